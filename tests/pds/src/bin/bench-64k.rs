//! Restart benchmark PD with a 64 KiB image (48 KiB of data plus code).

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::restart_bench!("bench_64k", 49152);
