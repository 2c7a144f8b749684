//! Fails in generations 0 and 1 with a wild write; see `axolotl_test_pds::crasher!`.

#![cfg_attr(target_os = "none", no_std, no_main)]

axolotl_test_pds::crasher!(2);
