//! Rendering an audit report. Each format is one module with one `render`
//! function; probe output is untrusted and each format escapes it for its
//! medium (control characters in the terminal table, JSON/YAML/SARIF by
//! serde, markup and XML-forbidden characters in HTML and JUnit).

pub mod csv;
mod data;
pub mod html;
pub mod junit;
pub(crate) mod markup;
pub mod sarif;
pub mod table;
#[cfg(test)]
mod testing;

use std::io::Write;

pub use data::{FindingRecord, ReportDocument, RunRecord};

use crate::audit::AuditReport;

/// The output formats of `sonde audit` and `sonde run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// KubeEye's tables: resources (NAMESPACE, NAME, KIND, MESSAGE), events, nodes, components.
    Table,
    /// The whole report as JSON.
    Json,
    /// The whole report as YAML.
    Yaml,
    /// One finding per row, spreadsheet-safe.
    Csv,
    /// One self-contained HTML page (inline CSS, no script, nothing external).
    Html,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// JUnit XML: a test suite per probe run, a test case per rule and resource.
    Junit,
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
        Format::Html => html::render(report, out)?,
        Format::Sarif => sarif::render(report, out)?,
        Format::Junit => junit::render(report, out)?,
    }
    Ok(())
}
