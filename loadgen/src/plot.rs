//! plot stub
use hdrhistogram::Histogram;
use std::path::Path;
use crate::config::PlotConfig;
/// stub
pub fn plot_files(_p: &PlotConfig) -> Result<(), String> { Err("todo".into()) }
/// stub
pub fn plot_histograms(_s: &[(String, &Histogram<u64>)], _t: &str, _p: &Path) -> Result<(), String> { Err("todo".into()) }
