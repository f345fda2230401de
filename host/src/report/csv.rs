//! The report as CSV, one finding per row, for spreadsheets. A cell that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is
//! prefixed with `'`, since probe text is untrusted.

use std::io::Write;

use crate::audit::AuditReport;

const HEADER: [&str; 10] = [
    "probe",
    "rule",
    "severity",
    "namespace",
    "kind",
    "name",
    "apiVersion",
    "message",
    "remedy",
    "labels",
];

/// Neutralises spreadsheet formulas.
pub fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

pub fn render(report: &AuditReport, out: &mut dyn Write) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER)?;
    for (probe, f) in report.findings() {
        let r = f.resource.as_ref();
        let labels: Vec<String> = f.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let row = [
            probe.to_string(),
            f.rule.clone(),
            f.severity.as_str().to_string(),
            r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
            r.map(|r| r.kind.clone()).unwrap_or_default(),
            r.map(|r| r.name.clone()).unwrap_or_default(),
            r.map(|r| r.api_version.clone()).unwrap_or_default(),
            f.message.clone(),
            f.remedy.clone().unwrap_or_default(),
            labels.join(";"),
        ];
        writer.write_record(row.iter().map(|c| cell(c)))?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1+2"), "'-1+2");
        assert_eq!(cell("plain"), "plain");
    }
}
