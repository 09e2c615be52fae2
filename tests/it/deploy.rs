//! The files in `deploy/`, checked with the tools this machine has: the systemd unit with
//! `systemd-analyze verify`, the Kubernetes manifests with `kubernetes-validate` (PyPI; it ships
//! the schemas, so it runs offline; `.ci/run` installs it) and against what xiezhi loads, the
//! compose file as YAML (the RabbitMQ definitions are checked against the code by a unit test in
//! `src/bus/amqp.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::repo_dir;

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(repo_dir().join("deploy/systemd/xiezhi.service"))
        .expect("deploy/systemd/xiezhi.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/xiezhi run"),
        "{unit}"
    );
    // verify checks that the binaries exist: point it at the one cargo built.
    let dir = std::env::temp_dir().join(format!("xiezhi-unit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("xiezhi.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/xiezhi", env!("CARGO_BIN_EXE_xiezhi")),
    )
    .expect("write unit");
    // Bounded: verify must never hold the test binary up.
    let out = std::process::Command::new("timeout")
        .args(["60", "systemd-analyze", "verify"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings to systemd: any output is a finding.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    std::fs::remove_dir_all(dir).ok();
}

/// The documents of a YAML file as JSON, read by PyYAML (the parser kubernetes-validate uses).
fn yaml_docs(path: &Path) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml; \
        docs = yaml.safe_load_all(open(sys.argv[1], encoding='utf-8')); \
        print(json.dumps([d for d in docs if d is not None]))";
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3 runs (PyYAML: a dependency of kubernetes-validate)");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every manifest in `deploy/kubernetes/` but `kustomization.yaml` (not a Kubernetes object).
fn kubernetes_manifests() -> Vec<PathBuf> {
    let dir = repo_dir().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_validate_strictly() {
    let files = kubernetes_manifests();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "configmap-connectors.yaml",
        "deployment.yaml",
        "migrate-job.yaml",
        "pdb.yaml",
        "secret.example.yaml",
        "service.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "deploy/kubernetes/{want} is missing: {names:?}"
        );
    }
    // Offline: kubernetes-validate ships the schemas. --strict: an unknown field is an error.
    // Bounded, like systemd-analyze above.
    let out = Command::new("timeout")
        .args([
            "120",
            "kubernetes-validate",
            "--strict",
            "--kubernetes-version",
            "1.31",
        ])
        .args(&files)
        .output()
        .expect("timeout runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "kubernetes-validate (python3 -m pip install 'kubernetes-validate==1.37.0'):\n{report}"
    );
    // A kind it has no schema for is only a warning to it (exit 0): every line must be a pass.
    for line in stdout.lines() {
        assert!(
            line.starts_with("INFO ") && line.contains(" passed for resource "),
            "kubernetes-validate: {line}\n{report}"
        );
    }
    for f in &files {
        assert!(
            stdout.contains(&format!("INFO {} passed", f.display())),
            "{} was not validated:\n{report}",
            f.display()
        );
    }
}

#[test]
fn the_compose_file_is_yaml_with_its_three_services() {
    let docs = yaml_docs(&repo_dir().join("deploy/compose.yaml"));
    assert_eq!(docs.len(), 1, "{docs:?}");
    let services = docs[0]["services"]
        .as_object()
        .expect("deploy/compose.yaml has `services`");
    for name in ["xiezhi", "rabbitmq", "postgres"] {
        assert!(
            services.contains_key(name),
            "deploy/compose.yaml has no service {name}: {:?}",
            services.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(services["xiezhi"]["command"], json!(["run"]));
}

/// The `*.toml` files of a directory by name: what `kubectl create configmap --from-file=DIR/`
/// puts in a ConfigMap.
fn toml_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, text)
        })
        .collect()
}

/// The `data` of the one ConfigMap in `deploy/kubernetes/FILE`.
fn config_map_data(file: &str) -> BTreeMap<String, String> {
    let docs = yaml_docs(&repo_dir().join("deploy/kubernetes").join(file));
    assert_eq!(docs.len(), 1, "{file}: one ConfigMap");
    assert_eq!(docs[0]["kind"], "ConfigMap", "{file}");
    docs[0]["data"]
        .as_object()
        .unwrap_or_else(|| panic!("{file}: no data"))
        .iter()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .unwrap_or_else(|| panic!("{file}: {k} is not text"));
            (k.clone(), text.to_owned())
        })
        .collect()
}

#[test]
fn the_kubernetes_config_maps_are_the_shipped_connectors_and_calendar() {
    for (file, dir) in [
        ("configmap-connectors.yaml", "connectors"),
        ("configmap-calendar.yaml", "calendar"),
    ] {
        let got = config_map_data(file);
        let want = toml_files(&repo_dir().join(dir));
        assert!(!want.is_empty(), "{dir}/ holds no *.toml");
        let differ: BTreeSet<&String> = got
            .keys()
            .chain(want.keys())
            .filter(|k| got.get(*k) != want.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "deploy/kubernetes/{file} and {dir}/ differ in {differ:?}: regenerate it with \
             `python3 deploy/kubernetes/sync-configmaps.py`"
        );
    }
}

/// A container's environment as the kubelet builds it (`envFrom`, then `env` over it), with the
/// Secrets of secret.example.yaml.
fn pod_env(
    container: &Value,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let name = from["secretRef"]["name"]
            .as_str()
            .expect("envFrom names a Secret");
        let secret = secrets
            .get(name)
            .unwrap_or_else(|| panic!("secret.example.yaml has no Secret {name}"));
        env.extend(secret.clone());
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_owned();
        let value = match var["value"].as_str() {
            Some(v) => v.to_owned(),
            None => {
                let r = &var["valueFrom"]["secretKeyRef"];
                let secret = r["name"].as_str().expect("secretKeyRef.name");
                let key = r["key"].as_str().expect("secretKeyRef.key");
                secrets
                    .get(secret)
                    .and_then(|s| s.get(key))
                    .unwrap_or_else(|| {
                        panic!("{name}: secret.example.yaml has no key {key} in Secret {secret}")
                    })
                    .clone()
            }
        };
        env.insert(name, value);
    }
    env
}

/// Where a pod's first container mounts the ConfigMap `name`.
fn config_map_mount(pod: &Value, name: &str) -> String {
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["configMap"]["name"] == name)
        .unwrap_or_else(|| panic!("no volume of ConfigMap {name}"))["name"]
        .clone();
    pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume)
        .unwrap_or_else(|| panic!("ConfigMap {name} is not mounted"))["mountPath"]
        .as_str()
        .expect("mountPath")
        .to_owned()
}

/// Writes a ConfigMap's files as the kubelet mounts them: in `..data/`, linked by name.
fn mount_config_map(dir: &Path, data: &BTreeMap<String, String>) {
    let real = dir.join("..data");
    std::fs::create_dir_all(&real).expect("mount directory");
    for (name, text) in data {
        std::fs::write(real.join(name), text).expect("write a file");
        std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name)).expect("link");
    }
}

/// What the pods of deployment.yaml and migrate-job.yaml get (environment with the example
/// Secrets, the three ConfigMaps where they are mounted) is a configuration xiezhi loads: the
/// configuration file, every connector with its secrets and a real base URL, the calendar.
#[test]
fn the_kubernetes_pods_get_a_configuration_xiezhi_loads() {
    let k8s = repo_dir().join("deploy/kubernetes");
    let mut secrets = BTreeMap::new();
    for doc in yaml_docs(&k8s.join("secret.example.yaml")) {
        assert_eq!(doc["kind"], "Secret", "secret.example.yaml");
        let data: BTreeMap<String, String> = doc["stringData"]
            .as_object()
            .expect("stringData")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("text").to_owned()))
            .collect();
        let name = doc["metadata"]["name"].as_str().expect("name").to_owned();
        secrets.insert(name, data);
    }
    let deployment = yaml_docs(&k8s.join("deployment.yaml")).remove(0);
    let job = yaml_docs(&k8s.join("migrate-job.yaml")).remove(0);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let job_pod = &job["spec"]["template"]["spec"];
    let job_container = &job_pod["containers"][0];
    assert_eq!(container["args"], json!(["run"]));
    assert_eq!(job_container["args"], json!(["migrate"]));
    // The migration runs with the configuration the new pods will run with.
    for key in ["volumes", "securityContext"] {
        assert_eq!(
            job_pod[key], pod[key],
            "migrate-job.yaml and deployment.yaml: {key}"
        );
    }
    for key in [
        "image",
        "command",
        "workingDir",
        "envFrom",
        "volumeMounts",
        "securityContext",
    ] {
        assert_eq!(
            job_container[key], container[key],
            "migrate-job.yaml and deployment.yaml: containers[0].{key}"
        );
    }
    let env = pod_env(container, &secrets);
    for (k, v) in pod_env(job_container, &secrets) {
        assert_eq!(
            env.get(&k),
            Some(&v),
            "migrate-job.yaml sets {k} unlike deployment.yaml"
        );
    }

    let root = std::env::temp_dir().join(format!("xiezhi-k8s-{}", uuid::Uuid::new_v4()));
    let mut mounts = BTreeMap::new();
    for name in ["xiezhi-config", "xiezhi-connectors", "xiezhi-calendar"] {
        let at = config_map_mount(pod, name);
        let local = root.join(at.trim_start_matches('/'));
        let file = format!("configmap-{}.yaml", name.trim_start_matches("xiezhi-"));
        mount_config_map(&local, &config_map_data(&file));
        mounts.insert(name, (at, local));
    }
    let lookup = |k: &str| env.get(k).cloned();

    let (config_at, config_dir) = &mounts["xiezhi-config"];
    assert_eq!(env["XIEZHI_CONFIG"], format!("{config_at}/xiezhi.toml"));
    let config_file = config_dir.join("xiezhi.toml");
    let config = xiezhi::config::Config::load(Some(config_file.as_path()), &lookup)
        .unwrap_or_else(|e| panic!("configmap-config.yaml's xiezhi.toml: {e}"));
    assert_eq!(
        config.http_addr,
        "0.0.0.0:8080".parse::<std::net::SocketAddr>().unwrap()
    );
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(
        config
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://")),
        "{:?}",
        config.database_url
    );
    assert!(config.amqp_url.is_some());
    assert_eq!(config.amqp.queue_type, xiezhi::bus::amqp::QueueType::Quorum);
    assert_eq!(
        config.deadlines.calendar_dir.as_path(),
        Path::new(&mounts["xiezhi-calendar"].0)
    );
    xiezhi::deadlines::WorkingCalendar::load_dir(&mounts["xiezhi-calendar"].1)
        .unwrap_or_else(|e| panic!("configmap-calendar.yaml: {e}"));

    assert_eq!(env["XIEZHI_CONNECTORS_DIR"], mounts["xiezhi-connectors"].0);
    let schema = Arc::new(xiezhi::schema::SchemaRegistry::embedded().expect("national schema"));
    let connectors = xiezhi::connectors::load_all(&mounts["xiezhi-connectors"].1, schema, &lookup)
        .unwrap_or_else(|e| panic!("configmap-connectors.yaml with secret.example.yaml: {e}"));
    assert_eq!(
        connectors.len(),
        toml_files(&repo_dir().join("connectors")).len()
    );
    for c in &connectors {
        assert!(
            !c.upstream.base_url.contains("127.0.0.1"),
            "{}: no base URL in secret.example.yaml ({})",
            c.def.name,
            c.upstream.base_url
        );
    }
    std::fs::remove_dir_all(root).ok();
}
