//! bench-64k under another name, for a PD with `restart_standby="false"`: restarted in place.

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::restart_bench!("bench_64k_in_place", 49152);
