//! Pull, step two: reading one response page into records, each with its exact upstream text.
//!
//! JSON is walked as raw values so every record keeps its bytes as received (the failure store
//! promises the raw payload byte-exact); XML elements keep their source slice; CSV rows keep their
//! line. The page's continuation fields (`next_cursor`, `has_more`) are read from the same body.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::definition::Format;
use crate::normalize::RawRecord;

/// A parsed page.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<RawRecord>,
    /// Values read at the requested metadata paths (`None` when absent).
    pub meta: BTreeMap<String, Option<String>>,
}

/// Parses a body. `meta_paths` are dot paths (JSON) or element paths (XML) to read besides the
/// records.
pub fn parse(
    format: Format,
    body: &str,
    records_path: &str,
    meta_paths: &[&str],
) -> Result<Page, String> {
    match format {
        Format::Json => parse_json(body, records_path, meta_paths),
        Format::Xml => parse_xml(body, records_path, meta_paths),
        Format::Csv => parse_csv(body),
    }
}

/// The response body with its top-level object parsed once into raw values: path lookups walk
/// from there without scanning the whole body again for every path.
struct RawDoc<'a> {
    body: &'a str,
    top: Option<BTreeMap<String, &'a RawValue>>,
}

impl<'a> RawDoc<'a> {
    fn new(body: &'a str) -> Result<RawDoc<'a>, String> {
        // Straight to the top-level object: the usual body is one, and this scan also checks
        // the whole body is JSON, so a page costs one scan less than reading it as a raw value
        // first. Anything else (an array, a scalar) is read as a raw value for the root path.
        if let Ok(top) = serde_json::from_str::<BTreeMap<String, &'a RawValue>>(body) {
            return Ok(RawDoc {
                body,
                top: Some(top),
            });
        }
        let _: &'a RawValue = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        Ok(RawDoc { body, top: None })
    }

    /// The raw value at a dot path; `None` when a segment is missing or not an object.
    fn at(&self, path: &str) -> Option<&'a RawValue> {
        if path.is_empty() {
            return serde_json::from_str(self.body).ok();
        }
        let mut segs = path.split('.');
        let mut cur = *self.top.as_ref()?.get(segs.next()?)?;
        for seg in segs {
            let obj: BTreeMap<String, &'a RawValue> = serde_json::from_str(cur.get()).ok()?;
            cur = obj.get(seg)?;
        }
        Some(cur)
    }
}

/// Reads one record again from the raw text a failure kept (and, for CSV, its header line), as
/// [`parse`] read it from its page: replay runs it through the current mapping.
pub fn reparse(
    format: Format,
    records_path: &str,
    raw: &str,
    context: Option<&str>,
) -> Result<RawRecord, String> {
    let page = match format {
        Format::Json => {
            let value: Value = serde_json::from_str(raw)
                .map_err(|e| format!("the raw record is not JSON: {e}"))?;
            return Ok(RawRecord {
                value,
                raw: raw.to_owned(),
                context: None,
            });
        }
        Format::Xml => {
            let element = records_path.rsplit('.').next().unwrap_or(records_path);
            parse_xml(raw, element, &[])?
        }
        Format::Csv => {
            let header = context.ok_or("the CSV line was kept without its header")?;
            parse_csv(&format!("{header}\n{raw}\n"))?
        }
    };
    let mut records = page.records;
    if records.len() != 1 {
        return Err(format!(
            "the raw text holds {} records, not one",
            records.len()
        ));
    }
    Ok(records.remove(0))
}

fn parse_json(body: &str, records_path: &str, meta_paths: &[&str]) -> Result<Page, String> {
    let doc = RawDoc::new(body)?;
    let list = doc
        .at(records_path)
        .ok_or_else(|| format!("no `{records_path}` in the response"))?;
    let items: Option<Vec<&RawValue>> = serde_json::from_str(list.get())
        .map_err(|e| format!("`{records_path}` is not an array: {e}"))?;
    let mut records = Vec::with_capacity(items.as_ref().map_or(0, Vec::len));
    for item in items.unwrap_or_default() {
        let value: Value =
            serde_json::from_str(item.get()).map_err(|e| format!("a record is not JSON: {e}"))?;
        records.push(RawRecord {
            value,
            raw: item.get().to_owned(),
            context: None,
        });
    }
    let mut meta = BTreeMap::new();
    for p in meta_paths {
        let v = doc
            .at(p)
            .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
            .and_then(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            });
        meta.insert((*p).to_owned(), v);
    }
    Ok(Page { records, meta })
}

fn parse_xml(body: &str, records_path: &str, meta_paths: &[&str]) -> Result<Page, String> {
    use quick_xml::Reader;
    use quick_xml::events::Event as X;

    let record_path: Vec<&str> = records_path.split('.').collect();
    let mut reader = Reader::from_str(body);
    // Text is trimmed per field, not per event: trimming events would eat the spaces around
    // entity references (`罚款 &amp; 警告`).
    reader.config_mut().trim_text(false);
    let mut stack: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut meta: BTreeMap<String, Option<String>> =
        meta_paths.iter().map(|p| ((*p).to_owned(), None)).collect();
    // While inside a record: its start offset, its fields, and the field being read.
    let mut current: Option<(usize, Map<String, Value>)> = None;
    let mut text = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| format!("bad XML at byte {}: {e}", reader.error_position()))?;
        match ev {
            X::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                stack.push(name);
                text.clear();
                if current.is_none()
                    && stack.len() == record_path.len()
                    && stack.iter().zip(&record_path).all(|(a, b)| a == b)
                {
                    current = Some((before, Map::new()));
                }
            }
            X::Empty(e) => {
                if let Some((_, fields)) = current.as_mut() {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    fields.insert(name, Value::String(String::new()));
                }
            }
            X::Text(t) => {
                let s = t.decode().map_err(|e| format!("bad XML text: {e}"))?;
                let s =
                    quick_xml::escape::unescape(&s).map_err(|e| format!("bad XML escape: {e}"))?;
                text.push_str(&s);
            }
            X::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            X::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r);
                let resolved = match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                text.push_str(resolved);
            }
            X::End(_) => {
                let end = reader.buffer_position() as usize;
                let depth = stack.len();
                if let Some((start, fields)) = current.as_mut() {
                    if depth == record_path.len() {
                        let raw = body.get(*start..end).unwrap_or_default().trim().to_owned();
                        let fields = std::mem::take(fields);
                        records.push(RawRecord {
                            value: Value::Object(fields),
                            raw,
                            context: None,
                        });
                        current = None;
                    } else if depth == record_path.len() + 1
                        && let Some(name) = stack.last()
                    {
                        fields.insert(name.clone(), Value::String(text.trim().to_owned()));
                    }
                } else {
                    let path = stack.join(".");
                    if let Some(slot) = meta.get_mut(&path) {
                        *slot = Some(text.trim().to_owned());
                    }
                }
                stack.pop();
                text.clear();
            }
            X::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!(
            "XML ends inside <{}> (truncated page?)",
            stack.join("/")
        ));
    }
    Ok(Page { records, meta })
}

fn parse_csv(body: &str) -> Result<Page, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("bad CSV header: {e}"))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    // Every line is read against the header: failures keep it next to their raw line.
    let header: Arc<str> = Arc::from(
        body.lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches('\r'),
    );
    let mut records = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        let start = rdr.position().byte() as usize;
        match rdr.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(format!(
                    "bad CSV row at line {}: {e}",
                    rdr.position().line()
                ));
            }
        }
        let end = rdr.position().byte() as usize;
        let raw = body
            .get(start..end)
            .unwrap_or_default()
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        let mut m = Map::new();
        for (h, v) in headers.iter().zip(row.iter()) {
            m.insert(h.clone(), Value::String(v.to_owned()));
        }
        records.push(RawRecord {
            value: Value::Object(m),
            raw,
            context: Some(header.clone()),
        });
    }
    if !body.is_empty() && !body.ends_with('\n') && !records.is_empty() {
        // Exports end every row with a newline; a missing one means the body was cut.
        return Err("CSV body does not end with a newline (truncated page?)".into());
    }
    Ok(Page {
        records,
        meta: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_keep_their_exact_text() {
        let body = r#"{"code":0,"data":{"total":2,"list":[{"a": 1,  "b":"x"},{"a":2}]},"next":"c2","more":false}"#;
        let p = parse(
            Format::Json,
            body,
            "data.list",
            &["next", "more", "data.total", "absent"],
        )
        .unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].raw, r#"{"a": 1,  "b":"x"}"#);
        assert_eq!(p.records[1].value["a"], 2);
        assert_eq!(p.meta["next"].as_deref(), Some("c2"));
        assert_eq!(p.meta["more"].as_deref(), Some("false"));
        assert_eq!(p.meta["data.total"].as_deref(), Some("2"));
        assert_eq!(p.meta["absent"], None);
    }

    #[test]
    fn a_top_level_array_is_the_records_at_the_empty_path() {
        let p = parse(Format::Json, r#" [{"a":1}, {"a":2}] "#, "", &["next"]).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[1].raw, r#"{"a":2}"#);
        assert_eq!(p.meta["next"], None);
        let p = parse(Format::Json, r#"{"list":[{"a":1}]}"#, "list", &[]).unwrap();
        assert_eq!(p.records[0].value["a"], 1);
        assert!(parse(Format::Json, r#"[{"a":1}]"#, "list", &[]).is_err());
    }

    #[test]
    fn a_body_with_text_after_its_object_is_an_error() {
        let err = parse(Format::Json, r#"{"list":[]} {"x":1}"#, "list", &[]).unwrap_err();
        assert!(err.starts_with("not JSON"), "{err}");
    }

    #[test]
    fn truncated_json_is_an_error() {
        assert!(
            parse(
                Format::Json,
                r#"{"data":{"list":[{"a":1},{"a""#,
                "data.list",
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn xml_records_become_flat_objects() {
        let body = "<ExchangeMessage><Header><NextCursor>n1</NextCursor><HasMore>true</HasMore></Header><Body>\
            <Record><CF_WSH>灵市监罚〔2025〕1号</CF_WSH><CF_JG>罚款 &amp; 警告</CF_JG><BZ/></Record>\
            <Record><CF_WSH>x2</CF_WSH></Record></Body></ExchangeMessage>";
        let p = parse(
            Format::Xml,
            body,
            "ExchangeMessage.Body.Record",
            &[
                "ExchangeMessage.Header.NextCursor",
                "ExchangeMessage.Header.HasMore",
            ],
        )
        .unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].value["CF_WSH"], "灵市监罚〔2025〕1号");
        assert_eq!(p.records[0].value["CF_JG"], "罚款 & 警告");
        assert!(
            p.records[0].raw.starts_with("<Record>") && p.records[0].raw.ends_with("</Record>"),
            "{}",
            p.records[0].raw
        );
        assert_eq!(
            p.meta["ExchangeMessage.Header.NextCursor"].as_deref(),
            Some("n1")
        );
        assert!(parse(Format::Xml, "<a><b>", "a.b", &[]).is_err());
    }

    #[test]
    fn csv_rows_keep_their_line() {
        let body = "任务编号,企业名称\nT1,\"甲,乙公司\"\nT2,丙\n";
        let p = parse(Format::Csv, body, "", &[]).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].value["企业名称"], "甲,乙公司");
        assert_eq!(p.records[0].raw, "T1,\"甲,乙公司\"");
        assert!(parse(Format::Csv, "a,b\n1,2\n3,", "", &[]).is_err());
    }

    #[test]
    fn every_format_reads_a_kept_record_again_as_its_page_did() {
        let cases = [
            (
                Format::Json,
                r#"{"data":{"list":[{"a": 1,  "b":"x"},{"a":2}]}}"#,
                "data.list",
            ),
            (
                Format::Xml,
                "<M><Body><Record><CF_WSH>x1</CF_WSH><CF_JG>罚款 &amp; 警告</CF_JG><BZ/></Record>\
                 <Record><CF_WSH>x2</CF_WSH></Record></Body></M>",
                "M.Body.Record",
            ),
            (
                Format::Csv,
                "\u{feff}任务编号,企业名称\r\nT1,\"甲,乙公司\"\r\nT2,丙\r\n",
                "",
            ),
        ];
        for (format, body, path) in cases {
            let page = parse(format, body, path, &[]).unwrap();
            assert_eq!(page.records.len(), 2, "{format:?}");
            for rec in &page.records {
                let again = reparse(format, path, &rec.raw, rec.context.as_deref()).unwrap();
                assert_eq!(
                    (&again.value, &again.raw),
                    (&rec.value, &rec.raw),
                    "{format:?}"
                );
            }
        }
        assert!(reparse(Format::Csv, "", "T1,丙", None).is_err());
        assert!(reparse(Format::Json, "", "{\"a\":", None).is_err());
        assert!(
            reparse(
                Format::Xml,
                "M.Body.Record",
                "<Record><a>1</a></Record><Record><a>2</a></Record>",
                None
            )
            .is_err()
        );
    }
}
