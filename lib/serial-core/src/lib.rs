//! Hardware-independent logic of the serial driver PD and its clients.
#![no_std]
