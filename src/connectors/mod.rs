//! Pull: **pull** → normalise → route → store → feed.
//!
//! Every upstream system is described by one declarative file in `connectors/`
//! ([`definition`]); one generic engine serves them all: an HTTP client per upstream ([`http`]),
//! a page reader per format ([`page`]) and an incremental stream sync ([`pull`]). So every
//! connector is shaped the same, and adding one is a file, not code.

pub mod definition;
pub mod http;
pub mod page;
pub mod pull;
pub mod push;
pub mod window;

use std::path::Path;
use std::sync::Arc;

use definition::{ConfigError, ConnectorDef};
use http::Upstream;
use pull::StreamPuller;

use crate::normalize::{Mapper, StreamNormalizer};
use crate::schema::SchemaRegistry;

/// A connector whose definition passed every load-time check.
pub struct Connector {
    pub def: ConnectorDef,
    pub upstream: Arc<Upstream>,
    pub normalizers: Vec<Arc<StreamNormalizer>>,
}

impl Connector {
    /// Checks a definition against the environment (secrets, URL) and the schema (code tables,
    /// mapping targets), and compiles its mappings.
    pub fn load(
        def: ConnectorDef,
        schema: Arc<SchemaRegistry>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Connector, ConfigError> {
        let upstream = Arc::new(Upstream::new(&def, env)?);
        let mut normalizers = Vec::with_capacity(def.streams.len());
        for (i, s) in def.streams.iter().enumerate() {
            let at = |k: &str| format!("streams[{i}] ({}).mapping.{k}", s.name);
            let mapper = Mapper::compile(&s.mapping, schema.codes())
                .map_err(|p| ConfigError::new(&def.file, at(&p.target), p.reason))?;
            let record_schema = schema.schema(s.record_type);
            for target in mapper.targets() {
                if !target_in_schema(record_schema, &schema, &target) {
                    return Err(ConfigError::new(
                        &def.file,
                        at(&target),
                        format!(
                            "`{target}` is not a field of the national `{}` record (see schemas/v1/{}.json)",
                            s.record_type, s.record_type
                        ),
                    ));
                }
            }
            normalizers.push(Arc::new(StreamNormalizer {
                record_type: s.record_type,
                mapper,
                id_field: s.id.clone(),
                updated_field: s.updated.clone(),
                op: s.op.as_ref().map(|o| (o.field.clone(), o.delete.clone())),
                schema: schema.clone(),
            }));
        }
        // A push's own mapping is checked like a stream's: a typo in it would otherwise
        // silently leave a field out of every delivery.
        for (i, p) in def.pushes.iter().enumerate() {
            let at = |k: &str| format!("pushes[{i}] ({}).mapping.{k}", p.name);
            let mapper = Mapper::compile(&p.mapping, schema.codes())
                .map_err(|e| ConfigError::new(&def.file, at(&e.target), e.reason))?;
            let record_schema = schema.schema(p.record_type);
            let named = p
                .fields
                .iter()
                .chain(p.only.iter().map(|w| &w.field))
                .cloned();
            for target in mapper.targets().chain(named) {
                if !target_in_schema(record_schema, &schema, &target) {
                    return Err(ConfigError::new(
                        &def.file,
                        format!("pushes[{i}] ({}).{target}", p.name),
                        format!(
                            "`{target}` is not a field of the national `{}` record (see schemas/v1/{}.json)",
                            p.record_type, p.record_type
                        ),
                    ));
                }
            }
        }
        Ok(Connector {
            def,
            upstream,
            normalizers,
        })
    }

    /// The pushes of this connector (or one), each writing with its mapping (a stream's, or its
    /// own) reversed.
    pub fn pushers(&self, only: Option<&str>) -> Vec<push::Pusher> {
        self.def
            .pushes
            .iter()
            .filter(|p| only.is_none_or(|o| o == p.name))
            .filter_map(|p| {
                let mapping = match &p.stream {
                    Some(name) => &self.def.stream(name)?.mapping,
                    None => &p.mapping,
                };
                Some(push::Pusher {
                    connector: self.def.name.clone(),
                    def: p.clone(),
                    upstream: self.upstream.clone(),
                    reverser: crate::normalize::reverse::Reverser::compile(mapping)
                        .restrict(&p.fields),
                })
            })
            .collect()
    }

    /// Fresh pullers for every stream (or one), each with its own counters.
    pub fn pullers(&self, only_stream: Option<&str>) -> Vec<StreamPuller> {
        self.def
            .streams
            .iter()
            .zip(&self.normalizers)
            .filter(|(s, _)| only_stream.is_none_or(|o| o == s.name))
            .map(|(s, n)| {
                StreamPuller::new(
                    self.def.name.clone(),
                    s.clone(),
                    self.upstream.clone(),
                    n.clone(),
                )
            })
            .collect()
    }
}

/// Whether a dot path names a property of the record schema, following `$ref`s into the shared
/// definitions and through arrays.
fn target_in_schema(schema: &serde_json::Value, registry: &SchemaRegistry, target: &str) -> bool {
    let mut node = schema.clone();
    for seg in target.split('.') {
        node = registry.resolve(&node);
        if let Some(items) = node.get("items") {
            node = registry.resolve(items);
        }
        match node.get("properties").and_then(|p| p.get(seg)) {
            Some(n) => node = n.clone(),
            None => return false,
        }
    }
    true
}

/// Loads and checks every connector: from `dir` when it exists, else the ones built in.
pub fn load_all(
    dir: &Path,
    schema: Arc<SchemaRegistry>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Connector>, ConfigError> {
    let defs = if dir.is_dir() {
        definition::load_dir(dir)?
    } else {
        tracing::info!(dir = %dir.display(), "No connectors directory; using the connector definitions built into this binary.");
        definition::embedded()?
    };
    defs.into_iter()
        .map(|d| Connector::load(d, schema.clone(), env))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        // Any non-empty value satisfies the secret and port checks.
        (name.starts_with("XIEZHI_") && !name.ends_with("_URL")).then(|| "1".to_owned())
    }

    #[test]
    fn every_shipped_connector_loads_against_the_schema() {
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let defs = definition::embedded().unwrap();
        assert_eq!(defs.len(), 5);
        let mut streams = 0;
        for d in defs {
            streams += d.streams.len();
            Connector::load(d, schema.clone(), &env).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(streams, 16);
    }

    #[test]
    fn a_window_needs_the_streams_update_stamp() {
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let mut def = definition::embedded()
            .unwrap()
            .into_iter()
            .find(|d| d.name == "provincial")
            .unwrap();
        def.streams[0].updated_format = None;
        let c = Connector::load(def, schema, &env).unwrap();
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let w = window::Window {
            from: t("2025-01-01 00:00:00"),
            to: t("2025-02-01 00:00:00"),
        };
        let mut pullers = c.pullers(None).into_iter();
        let e = pullers.next().unwrap().for_window(w.clone()).err().unwrap();
        assert!(
            e.contains("provincial/agencies") && e.contains("updated_format"),
            "{e}"
        );
        let p = pullers.next().unwrap().for_window(w).unwrap();
        assert_eq!(
            p.checkpoint_name(),
            "officers@2025-01-01T00:00:00.000..2025-02-01T00:00:00.000"
        );
        // A stream with `updated_format` but no `updated` is refused at load time.
        let text = definition::EMBEDDED[0]
            .1
            .replacen("updated = \"updateTime\"\n", "", 1);
        let e = definition::parse("provincial.toml", &text).unwrap_err();
        assert!(e.key.ends_with(".updated_format"), "{e}");
    }

    /// Every stream of every shipped connector, pulled from its simulator and normalised:
    /// exactly the simulator's valid records become events, exactly its invalid ones failures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connector_mapping_agrees_with_its_simulator() {
        use std::collections::{BTreeMap, BTreeSet};

        use crate::normalize::Outcome;
        use crate::record::{Lineage, Op};

        let sims = crate::sim::Simulators::start(crate::sim::SimConfig {
            seed: 99,
            records: 1500,
            invalid_rate: 0.1,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut vars: BTreeMap<String, String> =
            crate::sim::default_credentials().into_iter().collect();
        for (i, name) in crate::sim::SYSTEMS.iter().enumerate() {
            let url = sims.url(name).unwrap();
            vars.insert(
                format!("XIEZHI_SIM_PORT_{i}"),
                url.rsplit(':')
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_owned(),
            );
        }
        let env = move |k: &str| vars.get(k).cloned();
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let client = reqwest::Client::new();
        let mut problems = Vec::new();
        for def in definition::embedded().unwrap() {
            let conn = Connector::load(def, schema.clone(), &env).unwrap();
            let truth: serde_json::Value = client
                .get(format!("{}/truth", conn.upstream.base_url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut failed: BTreeMap<String, String> = BTreeMap::new();
            for p in conn.pullers(None) {
                let (tx, mut rx) = tokio::sync::mpsc::channel(4);
                let pr = &p;
                let stop = tokio_util::sync::CancellationToken::new();
                let fetch =
                    async move { pr.fetch_all(pull::Position::default(), &tx, &stop).await };
                let collect = async {
                    let mut out = Vec::new();
                    while let Some(fp) = rx.recv().await {
                        out.push(fp);
                    }
                    out
                };
                let (r, pages) = tokio::join!(fetch, collect);
                r.unwrap_or_else(|e| panic!("{}/{}: {e}", p.connector, p.def.name));
                let lineage = Lineage {
                    connector: p.connector.clone(),
                    stream: p.def.name.clone(),
                    ..Default::default()
                };
                for fp in pages {
                    for rec in fp.page.records {
                        // The declared update stamp reads (a window re-pull depends on it).
                        if let (Some(field), Some(f)) = (&p.def.updated, &p.def.updated_format) {
                            let v = crate::normalize::mapping::lookup(&rec.value, field);
                            let read = v.and_then(|v| match v {
                                serde_json::Value::String(s) => f.read(s),
                                other => f.read(&other.to_string()),
                            });
                            if read.is_none() {
                                problems.push(format!(
                                    "{}/{}: `{field}` = {v:?} does not read as {f:?}",
                                    p.connector, p.def.name
                                ));
                            }
                        }
                        match p.normalizer.normalize(rec, &lineage) {
                            Outcome::Event(ev) if ev.op == Op::Upsert => {
                                keys.entry(ev.recordtype.to_string())
                                    .or_default()
                                    .insert(ev.subject);
                            }
                            Outcome::Event(_) => {}
                            Outcome::Failure(f) => {
                                let why = f
                                    .errors
                                    .iter()
                                    .map(|e| format!("{} {} {}", e.code, e.path, e.message))
                                    .collect::<Vec<_>>()
                                    .join("; ");
                                failed.insert(
                                    f.upstream_id.unwrap_or_default(),
                                    format!("{}/{}: {why}", p.connector, p.def.name),
                                );
                            }
                        }
                    }
                }
            }
            let events: usize = keys.values().map(BTreeSet::len).sum();
            assert!(events > 100, "{}: only {events} events", conn.def.name);
            assert!(
                !failed.is_empty(),
                "{}: no failures at a 10% invalid rate",
                conn.def.name
            );
            let invalid: BTreeMap<String, String> = truth["invalid"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["id"].as_str().unwrap().to_owned(),
                        i["reason"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            for (id, why) in &failed {
                if !invalid.contains_key(id) {
                    problems.push(format!(
                        "{}: valid upstream record {id} failed: {why}",
                        conn.def.name
                    ));
                }
            }
            for (id, reason) in &invalid {
                if !failed.contains_key(id) {
                    problems.push(format!(
                        "{}: invalid upstream record {id} ({reason}) passed",
                        conn.def.name
                    ));
                }
            }
            for (t, want) in truth["valid"].as_object().unwrap() {
                let want: BTreeSet<String> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect();
                let got = keys.remove(t).unwrap_or_default();
                for k in want.difference(&got).take(3) {
                    problems.push(format!(
                        "{}: valid {t} {k} produced no event",
                        conn.def.name
                    ));
                }
                for k in got.difference(&want).take(3) {
                    problems.push(format!("{}: event for {t} {k} not in truth", conn.def.name));
                }
            }
        }
        sims.shutdown().await;
        problems.sort();
        problems.dedup();
        assert!(
            problems.is_empty(),
            "{} problems:\n{}",
            problems.len(),
            problems
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Maps one hand-written upstream record of `connector`/`stream` (no validation).
    fn map_one(connector: &str, stream: &str, upstream: serde_json::Value) -> serde_json::Value {
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let def = definition::embedded()
            .unwrap()
            .into_iter()
            .find(|d| d.name == connector)
            .unwrap();
        let s = def.stream(stream).unwrap();
        let mapper = Mapper::compile(&s.mapping, schema.codes()).unwrap();
        let (v, errors) = mapper.map(&upstream, schema.codes());
        assert!(errors.is_empty(), "{errors:?}");
        v
    }

    #[test]
    fn provincial_codes_get_labels_and_yuan_get_fen() {
        let v = map_one(
            "provincial",
            "penalties",
            serde_json::json!({"decisionNo": "灵市监罚〔2024〕7号", "penaltyType": "03,01", "fineAmount": 2000, "confiscateAmount": 12.5,
                "decisionDate": "2024-03-05", "partyType": "2", "partyIdType": "01", "partyIdNo": "620822199001011237",
                "officers": [{"name": "张三", "certNo": "62080001"}, {"name": "李四", "certNo": "62080002"}]}),
        );
        assert_eq!(
            v["categories"],
            serde_json::json!([{"code": "03", "label": "罚款"}, {"code": "01", "label": "警告"}])
        );
        assert_eq!(v["fine_amount"], "2000.00");
        assert_eq!(v["confiscated_amount"], "12.50");
        assert_eq!(v["decision_date"], "2024-03-05");
        assert_eq!(
            v["party"]["category"],
            serde_json::json!({"code": "2", "label": "自然人"})
        );
        assert_eq!(v["party"]["id_type"]["label"], "身份证");
        assert_eq!(
            v["officers"][1],
            serde_json::json!({"certificate_number": "62080002", "name": "李四"})
        );
    }

    #[test]
    fn internet_plus_person_columns_become_a_natural_person() {
        let v = map_one(
            "internet-plus",
            "check-action",
            serde_json::json!({"check_action_code": "JC1", "administrative_cp_na": "1", "administrative_cp_ce_type": "111",
                "administrative_cp_ui_code": "620822199001011237", "check_date": "2024-05-06 09:30:00", "check_type": "投诉举报核查",
                "check_result": "发现问题经责令已改正", "check_personnel": ["甲", "乙"], "check_personnel_code": ["c1", "c2"]}),
        );
        assert_eq!(v["party"]["category"]["code"], "2");
        assert_eq!(v["party"]["id_type"]["code"], "01");
        assert_eq!(v["party"]["id_number"], "620822199001011237");
        assert!(v["party"].get("uscc").is_none());
        assert_eq!(v["check_date"], "2024-05-06T09:30:00+08:00");
        assert_eq!(v["check_type"]["code"], "3");
        assert_eq!(v["result"]["code"], "ISSUE_CORRECTED");
        assert_eq!(
            v["officers"],
            serde_json::json!([{"certificate_number": "c1", "name": "甲"}, {"certificate_number": "c2", "name": "乙"}])
        );
    }

    #[test]
    fn credit_platform_labels_wan_yuan_and_slashed_dates() {
        let v = map_one(
            "credit-platform",
            "penalties",
            serde_json::json!({"CF_XDR_LB": "个体工商户", "CF_XDR_SHXYM": "00000000000000000X", "CF_XDR_GSZC": "620822600012345",
                "CF_XDR_ZJHM": "", "CF_CFLB": "罚款;没收违法所得", "CF_NR_FK": 0.2, "CF_NR_WFFF": null, "CF_JDRQ": "2024/03/05", "CF_YXQ": "2099/12/31"}),
        );
        assert_eq!(
            v["party"]["category"],
            serde_json::json!({"code": "3", "label": "个体工商户"})
        );
        assert_eq!(v["party"]["reg_no"], "620822600012345");
        assert!(
            v["party"].get("id_number").is_none(),
            "an empty string is absent"
        );
        assert_eq!(
            v["categories"][1],
            serde_json::json!({"code": "04", "label": "没收违法所得"})
        );
        assert_eq!(v["fine_amount"], "2000.00");
        assert!(v.get("confiscated_amount").is_none());
        assert_eq!(v["decision_date"], "2024-03-05");
        assert_eq!(v["valid_until"], "2099-12-31");
        let r = map_one(
            "credit-platform",
            "credit-ratings",
            serde_json::json!({"XY_PJTX": "纳税信用", "XY_DJ": "M级", "XY_PJRQ": "2024/12/31"}),
        );
        assert_eq!(r["scheme"]["code"], "TAX");
        assert_eq!(
            r["tier"],
            serde_json::json!({"code": "TAX-M", "label": "M级"})
        );
        let l = map_one(
            "credit-platform",
            "legacy-penalties",
            serde_json::json!({"CF_CFLB1": "警告", "CF_CFLB2": "", "CF_XDR_SFZ": "620822199001011237", "CF_FKJE": ""}),
        );
        assert_eq!(
            l["categories"],
            serde_json::json!([{"code": "01", "label": "警告"}])
        );
        assert_eq!(l["party"]["id_type"]["code"], "01");
        assert_eq!(l["valid_until"], "2099-12-31");
        assert!(l.get("fine_amount").is_none());
    }

    #[test]
    fn double_random_results_split_list_a_codes_and_officers() {
        let v = map_one(
            "double-random",
            "results",
            serde_json::json!({"任务编号": "T1", "主体类型": "个体工商户", "检查结果": "A;E", "检查日期": "20240506", "检查人员": "甲;乙", "执法证号": "c1;c2"}),
        );
        assert_eq!(v["party"]["category"]["code"], "3");
        assert_eq!(
            v["results"],
            serde_json::json!([{"code": "ISSUE_PENDING", "label": "发现问题待后续处理"}, {"code": "ISSUE_CORRECTED", "label": "发现问题经责令已改正"}])
        );
        assert_eq!(v["inspected_on"], "2024-05-06");
        assert_eq!(v["officers"][1]["certificate_number"], "c2");
        let t = map_one(
            "double-random",
            "tasks",
            serde_json::json!({"isJoint": 1, "itemCodes": "62000000000001,62000000000002", "taskStatus": "已公示"}),
        );
        assert_eq!(t["joint"], true);
        assert_eq!(
            t["item_codes"],
            serde_json::json!(["62000000000001", "62000000000002"])
        );
        assert_eq!(t["status"]["code"], "5");
    }

    #[test]
    fn hotline_epoch_milliseconds_become_beijing_time() {
        let v = map_one(
            "hotline-12345",
            "workorders",
            serde_json::json!({"acceptTime": 1710460800000i64, "appealType": "举报", "channel": "微信", "status": "办结归档", "isAnonymous": false}),
        );
        assert_eq!(v["received_at"], "2024-03-15T08:00:00+08:00");
        assert_eq!(v["category"]["code"], "4");
        assert_eq!(v["channel"]["code"], "3");
        assert_eq!(v["status"]["code"], "CLOSED");
        assert_eq!(v["anonymous"], false);
    }

    #[test]
    fn a_mapping_target_outside_the_schema_is_refused() {
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let mut d = definition::embedded().unwrap().remove(0);
        let spec = d.streams[0].mapping.values().next().unwrap().clone();
        d.streams[0].mapping.insert("party.nickname".into(), spec);
        let e = Connector::load(d, schema, &env).err().expect("refused");
        assert!(e.key.ends_with("mapping.party.nickname"), "{e}");
        assert!(e.reason.contains("not a field"), "{e}");
    }

    /// A push says how it writes (a stream's mapping or its own, not both), and its mapping,
    /// `fields` and `only` name national fields: a typo stops the start, not a delivery.
    #[test]
    fn a_push_is_checked_like_a_stream() {
        let schema = Arc::new(SchemaRegistry::embedded().unwrap());
        let text = |name: &str| {
            definition::EMBEDDED
                .iter()
                .find(|(f, _)| f.starts_with(&format!("connectors/{name}")))
                .unwrap()
                .1
                .to_owned()
        };
        let both = text("double-random").replace(
            "name = \"credit-tiers\"\n",
            "name = \"credit-tiers\"\nstream = \"tasks\"\n",
        );
        let e = definition::parse("double-random.toml", &both).unwrap_err();
        assert!(e.key.ends_with("(credit-tiers).mapping"), "{e}");
        let neither = text("hotline").replace(
            "stream = \"workorders\"\nrecords = \"records\"",
            "records = \"records\"",
        );
        let e = definition::parse("hotline-12345.toml", &neither).unwrap_err();
        assert!(e.key.ends_with("(workorder-outcomes).stream"), "{e}");
        for (from, to, key) in [
            (
                "\"resolved\"]",
                "\"resolved\", \"outcome\"]",
                "(workorder-outcomes).outcome",
            ),
            (
                "field = \"enforcement_case_number\"",
                "field = \"case_no\"",
                "(workorder-outcomes).case_no",
            ),
        ] {
            let d = definition::parse("hotline-12345.toml", &text("hotline").replace(from, to))
                .unwrap();
            let e = Connector::load(d, schema.clone(), &env)
                .err()
                .expect("refused");
            assert!(
                e.key.ends_with(key) && e.reason.contains("not a field"),
                "{e}"
            );
        }
        let d = definition::parse(
            "double-random.toml",
            &text("double-random").replace("period = \"ratePeriod\"", "periode = \"ratePeriod\""),
        )
        .unwrap();
        let e = Connector::load(d, schema, &env).err().expect("refused");
        assert!(e.key.ends_with("(credit-tiers).periode"), "{e}");
    }
}
