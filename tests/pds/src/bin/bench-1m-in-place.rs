//! bench-1m under another name, for a PD with `restart_standby="false"`: restarted in place.

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::restart_bench!("bench_1m_in_place", 1032192);
