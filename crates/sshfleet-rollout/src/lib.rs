//! Change control: journals, waves and failure budget, change windows, sealed plans, the wave driver.

pub mod driver;
pub mod journal;
pub mod opening;
pub mod plan;
pub mod signature;
pub mod waves;
pub mod window;
