//! How the CLI prints: aligned text for people, JSON for scripts.

use std::io::Write;

use anyhow::Result;
use promptseal::context::collection::CollectionId;
use promptseal::leak::{Finding, LeakPolicy};
use promptseal::store::context::{CollectionSummary, DocumentSummary};
use promptseal::store::templates::TemplateSummary;
use promptseal::store::usage::UsageRecord;
use promptseal::template::{TemplateText, VersionMeta};
use promptseal::tenant::{ExportDestination, Tenant};
use serde::Serialize;
use serde_json::json;

use crate::context::Ingested;

pub struct Output {
    pub json: bool,
}

impl Output {
    fn print_json(&self, value: &impl Serialize) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value)?;
        writeln!(stdout)?;
        Ok(())
    }

    pub fn done(&self, message: &str) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "ok": true, "message": message }));
        }
        println!("{message}");
        Ok(())
    }

    pub fn put_result(&self, meta: &VersionMeta, activated: bool) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "version": meta, "activated": activated }));
        }
        let state = if activated {
            "sealed and activated"
        } else {
            "sealed (not active)"
        };
        println!("{} version {} {state}", meta.template_id, meta.version);
        Ok(())
    }

    pub fn refingerprinted(&self, versions: &[VersionMeta]) -> Result<()> {
        if self.json {
            let done: Vec<_> = versions
                .iter()
                .map(|v| json!({ "template_id": v.template_id, "version": v.version }))
                .collect();
            return self.print_json(&json!({ "refingerprinted": done }));
        }
        for v in versions {
            println!(
                "{} version {}: fingerprints computed again",
                v.template_id, v.version
            );
        }
        Ok(())
    }

    pub fn ingested(&self, collection: &CollectionId, done: &[Ingested]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({
                "collection": collection.path(),
                "documents": done,
            }));
        }
        let rows = done.iter().map(|d| {
            vec![
                d.name.clone(),
                d.status.to_owned(),
                d.chunks.to_string(),
                d.generation.to_string(),
            ]
        });
        println!("{}", collection.path());
        table(&["DOCUMENT", "STATUS", "CHUNKS", "GENERATION"], rows);
        Ok(())
    }

    pub fn collections(&self, collections: &[CollectionSummary]) -> Result<()> {
        if self.json {
            return self.print_json(&collections);
        }
        let rows = collections.iter().map(|c| {
            vec![
                c.owner.to_owned(),
                c.tenant.clone().unwrap_or_else(|| "-".into()),
                c.collection.clone(),
                c.documents.to_string(),
                c.chunks.to_string(),
                format!("{} ({})", c.model, c.dimensions),
                c.updated_at.clone(),
            ]
        });
        table(
            &[
                "OWNER",
                "TENANT",
                "COLLECTION",
                "DOCUMENTS",
                "CHUNKS",
                "MODEL",
                "UPDATED",
            ],
            rows,
        );
        Ok(())
    }

    pub fn collection(
        &self,
        summary: &CollectionSummary,
        documents: &[DocumentSummary],
    ) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "collection": summary, "documents": documents }));
        }
        println!(
            "{} {}{}: {} chunks in {} document(s), {} ({} dimensions), version {}, updated {}",
            summary.owner,
            summary
                .tenant
                .as_deref()
                .map_or(String::new(), |t| format!("{t} ")),
            summary.collection,
            summary.chunks,
            summary.documents,
            summary.model,
            summary.dimensions,
            summary.version,
            summary.updated_at,
        );
        let rows = documents.iter().map(|d| {
            vec![
                d.name.clone(),
                d.chunks.to_string(),
                d.bytes.to_string(),
                d.generation.to_string(),
                d.ingested_at.clone(),
            ]
        });
        table(
            &["DOCUMENT", "CHUNKS", "BYTES", "GENERATION", "INGESTED"],
            rows,
        );
        Ok(())
    }

    pub fn templates(&self, heads: &[TemplateSummary]) -> Result<()> {
        if self.json {
            return self.print_json(&heads);
        }
        let rows = heads.iter().map(|h| {
            vec![
                h.template_id.clone(),
                h.active_version.map_or("-".into(), |v| v.to_string()),
                h.latest_version.to_string(),
                h.updated_at.clone(),
            ]
        });
        table(&["TEMPLATE", "ACTIVE", "LATEST", "UPDATED"], rows);
        Ok(())
    }

    pub fn versions(&self, versions: &[VersionMeta], active: Option<u32>) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "active_version": active, "versions": versions }));
        }
        let rows = versions.iter().map(|v| {
            let marker = if active == Some(v.version) { " *" } else { "" };
            vec![
                format!("{}{marker}", v.version),
                v.status.as_str().into(),
                v.settings.model_id.clone(),
                v.created_by.clone(),
                v.created_at.clone(),
            ]
        });
        table(
            &["VERSION", "STATUS", "MODEL", "CREATED BY", "CREATED AT"],
            rows,
        );
        Ok(())
    }

    pub fn version(&self, meta: &VersionMeta, text: Option<&TemplateText>) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "version": meta, "text": text }));
        }
        let s = &meta.settings;
        let b = s.inference;
        println!("template     {}", meta.template_id);
        println!("version      {} ({})", meta.version, meta.status.as_str());
        println!("model        {}", s.model_id);
        println!("max tokens   {}", b.max_tokens);
        println!(
            "temperature  {} (allowed {}..={})",
            b.temperature_default, b.temperature_min, b.temperature_max
        );
        if let Some(g) = &s.guardrail {
            println!("guardrail    {} version {}", g.id, g.version);
        }
        let policy = match s.leak_guard.policy {
            LeakPolicy::Block => "withhold replies",
            LeakPolicy::Redact => "redact leaked spans",
        };
        println!(
            "leak guard   {policy} repeating {}+ template words",
            s.leak_guard.min_span
        );
        println!("created      {} by {}", meta.created_at, meta.created_by);
        println!("variables");
        for v in &s.variables {
            let need = if v.required { "required" } else { "optional" };
            println!(
                "  {:<20} {need}, at most {} characters",
                v.name, v.max_chars
            );
        }
        match text {
            None => println!("text         sealed (use --decrypt to print it)"),
            Some(t) => {
                println!("\n--- system ---\n{}", t.system);
                for (i, m) in t.messages.iter().enumerate() {
                    println!("\n--- messages[{i}] ({}) ---\n{}", m.role.as_str(), m.text);
                }
            }
        }
        Ok(())
    }

    pub fn tenant(&self, t: &Tenant) -> Result<()> {
        if self.json {
            return self.print_json(t);
        }
        let s = &t.spec;
        println!("tenant           {}", s.tenant_id);
        println!("status           {}", t.status.as_str());
        let templates: Vec<_> = s.templates.iter().map(String::as_str).collect();
        println!("templates        {}", or_dash(&templates.join(", ")));
        println!("payload logging  {}", logging(t));
        println!("daily tokens     {}", limit(s.quotas.daily_tokens));
        println!("daily requests   {}", limit(s.quotas.daily_requests));
        println!("export           {}", export(s.export.as_ref()));
        println!(
            "context key      {}",
            s.context.as_ref().map_or("- (the ISV's)", |c| &c.key_arn)
        );
        println!(
            "context search   {}",
            s.context
                .as_ref()
                .and_then(|c| c.function.as_deref())
                .unwrap_or("- (the ISV's retrieve-context)")
        );
        println!(
            "drafts           {}",
            if s.preview {
                "may call (previews)"
            } else {
                "-"
            }
        );
        println!("created          {}", t.created_at);
        println!("updated          {}", t.updated_at);
        Ok(())
    }

    pub fn tenants(&self, tenants: &[Tenant]) -> Result<()> {
        if self.json {
            return self.print_json(&tenants);
        }
        let rows = tenants.iter().map(|t| {
            vec![
                t.spec.tenant_id.clone(),
                t.status.as_str().into(),
                t.spec.templates.len().to_string(),
                logging(t),
                limit(t.spec.quotas.daily_tokens),
            ]
        });
        table(
            &[
                "TENANT",
                "STATUS",
                "TEMPLATES",
                "PAYLOAD LOGGING",
                "DAILY TOKENS",
            ],
            rows,
        );
        Ok(())
    }

    pub fn scan(
        &self,
        template_id: &str,
        version: u32,
        bytes: usize,
        findings: &[Finding],
    ) -> Result<()> {
        if self.json {
            return self.print_json(&json!({
                "template_id": template_id,
                "version": version,
                "bytes_scanned": bytes,
                "findings": findings,
            }));
        }
        println!(
            "{} leaked span(s) of {template_id} version {version} in {bytes} bytes",
            findings.len()
        );
        let rows = findings.iter().map(|f| {
            vec![
                f.start.to_string(),
                f.len.to_string(),
                format!("{:.2}", f.score),
                f.form.as_str().to_owned(),
            ]
        });
        table(&["OFFSET", "LENGTH", "SCORE", "FORM"], rows);
        Ok(())
    }

    pub fn usage(&self, records: &[UsageRecord]) -> Result<()> {
        if self.json {
            return self.print_json(&records);
        }
        let rows = records.iter().map(|r| {
            vec![
                r.day.clone(),
                r.model_id.clone(),
                r.requests.to_string(),
                r.input_tokens.to_string(),
                r.cache_read_input_tokens.to_string(),
                r.cache_write_input_tokens.to_string(),
                r.output_tokens.to_string(),
            ]
        });
        table(
            &[
                "DAY",
                "MODEL",
                "REQUESTS",
                "INPUT TOKENS",
                "CACHE READ",
                "CACHE WRITE",
                "OUTPUT TOKENS",
            ],
            rows,
        );
        Ok(())
    }
}

fn logging(t: &Tenant) -> String {
    let p = t.spec.payload_logging;
    if p.enabled {
        format!("on, kept {} days", p.retention_days)
    } else {
        "off".into()
    }
}

fn limit(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), |n| n.to_string())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// Prints rows under headers, each column as wide as its widest cell.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .fold(h.len(), usize::max)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn export(e: Option<&ExportDestination>) -> String {
    let Some(e) = e else {
        return "-".into();
    };
    let mut out = format!("s3://{}/{} (account {})", e.bucket, e.prefix, e.account_id);
    if let Some(key) = &e.kms_key_id {
        out.push_str(&format!(" (SSE-KMS {key})"));
    }
    if let Some(role) = &e.role_arn {
        out.push_str(&format!(" via {role}"));
    }
    if let Some(id) = &e.external_id {
        out.push_str(&format!(
            "; external id {id} (the role's trust policy must require it)"
        ));
    }
    out
}
