//! Rendering an audit report. Each format is one module with one `render`
//! function; probe output is untrusted and each format escapes it for its
//! medium (control characters in the terminal table, JSON/YAML by serde).

pub mod csv;
mod data;
pub mod table;

use std::io::Write;

pub use data::ReportDocument;

use crate::audit::AuditReport;

/// The output formats of `sonde audit` and `sonde run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Findings grouped per resource (NAMESPACE, NAME, KIND, MESSAGE).
    Table,
    /// The whole report as JSON.
    Json,
    /// The whole report as YAML.
    Yaml,
    /// One finding per row, spreadsheet-safe.
    Csv,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report")]
    Io(#[from] std::io::Error),
    #[error("cannot encode the report as JSON")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode the report as YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("cannot write the report as CSV")]
    Csv(#[from] ::csv::Error),
}

/// Writes `report` in `format`.
pub fn render(
    report: &AuditReport,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    match format {
        Format::Table => table::render(report, out)?,
        Format::Json => {
            let text = serde_json::to_string_pretty(&ReportDocument::from(report))?;
            writeln!(out, "{text}")?;
        }
        Format::Yaml => {
            out.write_all(serde_yaml::to_string(&ReportDocument::from(report))?.as_bytes())?
        }
        Format::Csv => csv::render(report, out)?,
    }
    Ok(())
}
