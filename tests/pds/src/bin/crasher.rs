//! Fails once (generation 0) with a wild write; see `axolotl_test_pds::crasher!`.

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::crasher!(1);
