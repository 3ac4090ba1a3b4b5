// Each test binary uses a different part of the support code.
#![allow(dead_code)]

pub mod cluster;
pub mod fake_kube;
pub mod generated;
pub mod postgres;
pub mod rig;
pub mod servers;
pub mod tls;
pub mod webdriver;
