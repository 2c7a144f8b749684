//! Restart benchmark PD with a 1 MiB image (1008 KiB of data plus code).

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::restart_bench!("bench_1m", 1032192);
