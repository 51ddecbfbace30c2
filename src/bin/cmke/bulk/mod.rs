//! `cmke rewrap`, `inventory` and `verify` over files and trees: walking, jobs under one
//! memory budget, replacing a header in place, and the reports.

#[cfg(feature = "azure-blob")]
pub mod blobs;
pub mod commands;
pub mod inventory;
pub mod inventory_records;
pub mod jobs;
pub mod memory_budget;
pub mod replace;
pub mod report;
pub mod walk;
