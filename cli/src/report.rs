//! Reproduction reports: `orrery report PAPER` turns the runs of a paper's specs into a Markdown
//! report, a JSON file of the same figures and PNG plots, each claim checked against its threshold.

pub mod stability;
