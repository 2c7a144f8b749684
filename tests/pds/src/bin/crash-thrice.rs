//! Fails in generations 0, 1 and 2; see `axolotl_test_pds::crasher!`.

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::crasher!(3);
