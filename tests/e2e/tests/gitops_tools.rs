//! CUPCAKE beside Argo CD and Flux (docs/gitops-tools.md):
//!
//! - The Argo CD health check for DirectUpdate
//!   (`examples/argocd/resource_customizations/cupcake.ricardomolendijk.com/DirectUpdate/`)
//!   runs its own test cases, written in Argo CD's `health_test.yaml` format, in a real
//!   Lua 5.1 interpreter set up like Argo CD's: `obj` a global table decoded from the
//!   object, only the base, table and os libraries (no `string`, as in Argo CD).
//! - The example manifests under `examples/argocd` and `examples/flux` pass a server-side
//!   dry-run on the harness: core objects and DirectUpdates against the real CRDs, Argo CD
//!   Applications and Flux Kustomizations/GitRepositories against those projects' own CRDs
//!   (`tests/harness/gitops-crds.sh`); the chart values in the Application and the
//!   HelmRelease render with helm.
//!
//! `lua5.1` comes from `CUPCAKE_LUA` or PATH; missing, these tests skip with a message,
//! and fail when `CUPCAKE_REQUIRE_LUA=1` (as `tests/run-all.sh` sets). The same holds for
//! the CRDs of gitops-crds.sh with `CUPCAKE_REQUIRE_GITOPS_CRDS=1`, and helm with
//! `CUPCAKE_REQUIRE_HELM=1`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cupcake_e2e::{TestNamespace, kubectl, ok, repo};
use serde_json::Value;

const HEALTH_DIR: &str =
    "examples/argocd/resource_customizations/cupcake.ricardomolendijk.com/DirectUpdate";
const STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

fn missing(what: String, require: &str) -> Option<PathBuf> {
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{what}; {require}=1 makes that a failure");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// The Lua 5.1 interpreter, or `None` when absent and not required.
fn lua() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CUPCAKE_LUA") {
        return Some(PathBuf::from(p));
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("lua5.1"))
        .find(|p| p.is_file());
    found.or_else(|| {
        missing(
            "lua5.1 not found on PATH (apt-get install lua5.1, or set CUPCAKE_LUA)".into(),
            "CUPCAKE_REQUIRE_LUA",
        )
    })
}

/// A Lua string literal of `s` (bytes escaped the Lua 5.1 way).
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// A Lua table constructor for a JSON value, as Argo CD decodes objects for Lua
/// (objects and arrays become tables, arrays indexed from 1, null is nil).
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(a) => format!(
            "{{{}}}",
            a.iter().map(lua_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Run `script` on `obj` as Argo CD runs a health script; (status, message) or the
/// interpreter's error.
fn run_health(lua: &Path, script: &Path, obj: &Value) -> Result<(String, String), String> {
    // Argo CD opens only the base, table and (a safe) os library: no string library, and
    // so no string methods either.
    let program = format!(
        r#"
local env = {{}}
for _, k in ipairs({{"assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "unpack", "xpcall", "rawequal", "rawget", "rawset",
  "getmetatable", "setmetatable", "_VERSION"}}) do env[k] = _G[k] end
env.table = table
env.os = {{time = os.time, date = os.date, clock = os.clock}}
env._G = env
env.obj = {obj}
local chunk = assert(loadfile({script}))
setfenv(chunk, env)
debug.getmetatable("").__index = nil
local ok, hs = pcall(chunk)
if not ok then io.stderr:write(tostring(hs)); os.exit(2) end
if type(hs) ~= "table" then io.stderr:write("health.lua returned " .. type(hs)); os.exit(2) end
io.write(tostring(hs.status), "\0", tostring(hs.message or ""))
"#,
        obj = lua_value(obj),
        script = lua_string(script.to_str().unwrap()),
    );
    let mut child = Command::new(lua)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", lua.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\0').ok_or(text.clone())?;
    Ok((status.to_string(), message.to_string()))
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every case of health_test.yaml gives the status and message it names; every testdata
/// file is a case; the cases cover every phase of the CRD and the four health states.
#[test]
fn directupdate_health_check_passes_its_argo_cd_test_cases() {
    let Some(lua) = lua() else { return };
    let dir = repo().join(HEALTH_DIR);
    let script = dir.join("health.lua");
    let tests = read_yaml(&dir.join("health_test.yaml"));
    let cases = tests["tests"].as_array().expect("tests: a list");
    let mut failures = Vec::new();
    let mut inputs = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    let mut phases = BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().expect("inputPath");
        let want_status = case["healthStatus"]["status"]
            .as_str()
            .expect("healthStatus.status");
        let want_message = case["healthStatus"]["message"].as_str().unwrap_or("");
        assert!(
            STATUSES.contains(&want_status),
            "{input}: no Argo CD status {want_status:?}"
        );
        inputs.insert(input.to_string());
        statuses.insert(want_status.to_string());
        let obj = read_yaml(&dir.join(input));
        assert_eq!(obj["kind"], "DirectUpdate", "{input}");
        if let Some(p) = obj["status"]["phase"].as_str() {
            phases.insert(p.to_string());
        }
        match run_health(&lua, &script, &obj) {
            Ok((s, m)) if s == want_status && m == want_message => {}
            Ok((s, m)) => failures.push(format!(
                "{input}: got {s} {m:?}, want {want_status} {want_message:?}"
            )),
            Err(e) => failures.push(format!("{input}: health.lua failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let on_disk: BTreeSet<String> = std::fs::read_dir(dir.join("testdata"))
        .unwrap()
        .map(|e| format!("testdata/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(
        on_disk, inputs,
        "every testdata file is a case of health_test.yaml"
    );
    for s in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(statuses.contains(s), "no case expects {s}");
    }
    // Every phase the CRD allows has a case (a new phase needs a mapping).
    let crd = read_yaml(&repo().join("crds/directupdates.yaml"));
    let enum_values = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["status"]["properties"]["phase"]["enum"]
        .as_array()
        .expect("status.phase enum in crds/directupdates.yaml")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect::<BTreeSet<_>>();
    let uncovered: Vec<&String> = enum_values.difference(&phases).collect();
    assert!(
        uncovered.is_empty(),
        "no health case for phases {uncovered:?}"
    );
}

/// The sandbox is Argo CD's: a script using the string library fails here as it would
/// there, and a script error is reported, not taken for a status.
#[test]
fn health_scripts_run_without_the_string_library_as_in_argo_cd() {
    let Some(lua) = lua() else { return };
    let dir = tempfile::tempdir().unwrap();
    let obj = serde_json::json!({"status": {"phase": "Succeeded"}});
    let uses_string = dir.path().join("string.lua");
    std::fs::write(
        &uses_string,
        "local hs = {}\nhs.status = \"Healthy\"\nhs.message = string.lower(obj.status.phase)\nreturn hs\n",
    )
    .unwrap();
    let err = run_health(&lua, &uses_string, &obj).unwrap_err();
    assert!(err.contains("string"), "{err}");
    let method = dir.path().join("method.lua");
    std::fs::write(
        &method,
        "local hs = {}\nhs.status = \"Healthy\"\nhs.message = obj.status.phase:lower()\nreturn hs\n",
    )
    .unwrap();
    assert!(run_health(&lua, &method, &obj).is_err());
    let fine = dir.path().join("fine.lua");
    std::fs::write(
        &fine,
        "local hs = {}\nlocal t = {}\ntable.insert(t, obj.status.phase)\nhs.status = \"Healthy\"\nhs.message = table.concat(t, \",\")\nreturn hs\n",
    )
    .unwrap();
    assert_eq!(
        run_health(&lua, &fine, &obj).unwrap(),
        ("Healthy".to_string(), "Succeeded".to_string())
    );
}

/// argocd-cm.yaml carries exactly the tested script.
#[test]
fn argocd_cm_embeds_the_tested_health_check() {
    let cm = read_yaml(&repo().join("examples/argocd/argocd-cm.yaml"));
    let key = "resource.customizations.health.cupcake.ricardomolendijk.com_DirectUpdate";
    let embedded = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("examples/argocd/argocd-cm.yaml: no data.{key}"));
    let script = std::fs::read_to_string(repo().join(HEALTH_DIR).join("health.lua")).unwrap();
    assert_eq!(
        embedded, script,
        "examples/argocd/argocd-cm.yaml and {HEALTH_DIR}/health.lua differ"
    );
    // The ignore rules name the field managers CUPCAKE really uses.
    let ignore = cm["data"]["resource.customizations.ignoreDifferences.cupcake.ricardomolendijk.com_DirectUpdate"]
        .as_str()
        .unwrap();
    assert!(
        ignore.contains(cupcake_reconciler::rollout::FIELD_MANAGER),
        "{ignore}"
    );
    assert!(
        ignore.contains(cupcake_reconciler::rollout::FINALIZER),
        "{ignore}"
    );
}

/// Every YAML document under examples/argocd and examples/flux, with its file name.
fn example_documents() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // The health check's testdata are DirectUpdates with a status: checked above.
                if !p.ends_with("resource_customizations") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    for d in ["examples/argocd", "examples/flux"] {
        walk(&repo().join(d), &mut files);
    }
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        for (i, part) in text.split("\n---\n").enumerate() {
            let v: Value =
                yaml_serde::from_str(part).unwrap_or_else(|e| panic!("{name} document {i}: {e}"));
            if !v.is_null() {
                docs.push((name.clone(), v));
            }
        }
    }
    docs
}

fn apply_dry_run(docs: &[Value], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    let text = docs
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    std::fs::write(&file, text).unwrap();
    let out = kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        file.to_str().unwrap(),
    ]);
    let stdout = ok(&out, &format!("kubectl apply --dry-run=server ({what})")).unwrap();
    assert_eq!(
        stdout.matches("(server dry run)").count(),
        docs.len(),
        "{what}: every object accepted:\n{stdout}"
    );
}

fn helm() -> Option<PathBuf> {
    let path = match std::env::var_os("CUPCAKE_HELM") {
        Some(p) => PathBuf::from(p),
        None => {
            let out = Command::new(repo().join("tests/harness/build-helm.sh"))
                .arg("--print-bin")
                .output()
                .unwrap();
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    if path.is_file() {
        Some(path)
    } else {
        missing(
            format!(
                "helm not found at {} (tests/harness/build-helm.sh)",
                path.display()
            ),
            "CUPCAKE_REQUIRE_HELM",
        )
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The examples are objects a real apiserver accepts, and the chart values they carry
/// render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_and_flux_examples_pass_server_side_dry_run() {
    let docs = example_documents();
    let client = cupcake_e2e::client().await;
    let ns = TestNamespace::new(&client, "gitops-tools").await.unwrap();

    // CRDs: CUPCAKE's, and Argo CD's and Flux's from their modules.
    let crds = Command::new(repo().join("tests/harness/gitops-crds.sh"))
        .arg("--print-dir")
        .output()
        .unwrap();
    let crd_dir = PathBuf::from(String::from_utf8_lossy(&crds.stdout).trim());
    let have_tool_crds = crd_dir.join(".stamp").is_file();
    if !have_tool_crds {
        missing(
            format!(
                "no Argo CD/Flux CRDs in {} (run tests/harness/gitops-crds.sh)",
                crd_dir.display()
            ),
            "CUPCAKE_REQUIRE_GITOPS_CRDS",
        );
    }
    let mut dirs = vec![repo().join("crds")];
    if have_tool_crds {
        dirs.push(crd_dir.clone());
    }
    for d in &dirs {
        ok(
            &kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                d.to_str().unwrap(),
            ]),
            &format!("kubectl apply -f {}", d.display()),
        )
        .unwrap();
    }
    let mut wait = vec![
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/directupdates.cupcake.ricardomolendijk.com",
    ];
    if have_tool_crds {
        wait.extend([
            "crd/applications.argoproj.io",
            "crd/appprojects.argoproj.io",
            "crd/kustomizations.kustomize.toolkit.fluxcd.io",
            "crd/gitrepositories.source.toolkit.fluxcd.io",
        ]);
    }
    ok(&kubectl(&wait), "CRDs Established").unwrap();

    // Namespaced objects go to the test's namespace (argocd, flux-system, default there).
    let mut checked = Vec::new();
    let mut skipped = Vec::new();
    let mut by_tool: Vec<Value> = Vec::new();
    for (file, d) in &docs {
        let api = d["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no apiVersion"));
        let kind = d["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no kind"));
        let mut d = d.clone();
        if d["metadata"].get("namespace").is_some() {
            d["metadata"]["namespace"] = Value::String(ns.name.clone());
        }
        let tool = api.contains("argoproj.io") || api.contains("toolkit.fluxcd.io");
        if api.starts_with("helm.toolkit.fluxcd.io") {
            // No helm-controller CRD (see gitops-crds.sh): its values are rendered below.
            skipped.push(format!("{file}: {kind}"));
            continue;
        }
        if tool && !have_tool_crds {
            skipped.push(format!("{file}: {kind}"));
            continue;
        }
        checked.push(format!("{file}: {kind}"));
        by_tool.push(d);
    }
    apply_dry_run(&by_tool, "examples/argocd, examples/flux");
    eprintln!(
        "dry-run accepted:\n  {}\nnot dry-run:\n  {}",
        checked.join("\n  "),
        skipped.join("\n  ")
    );
    assert!(
        checked.iter().any(|c| c.ends_with(": DirectUpdate"))
            && checked.iter().any(|c| c.ends_with(": ConfigMap")),
        "{checked:?}"
    );

    // The chart values in the Argo CD Application and the Flux HelmRelease render.
    let Some(helm) = helm() else { return };
    for (file, d) in &docs {
        let values = match d["kind"].as_str() {
            Some("Application") if d["spec"]["source"]["path"] == "charts/cupcake" => {
                &d["spec"]["source"]["helm"]["valuesObject"]
            }
            Some("HelmRelease") => {
                assert_eq!(
                    d["spec"]["chart"]["spec"]["chart"], "charts/cupcake",
                    "{file}"
                );
                &d["spec"]["values"]
            }
            _ => continue,
        };
        let dir = tempfile::tempdir().unwrap();
        let vf = dir.path().join("values.yaml");
        std::fs::write(&vf, serde_json::to_string(values).unwrap()).unwrap();
        let out = Command::new(&helm)
            .args([
                "template",
                "cupcake",
                "charts/cupcake",
                "-f",
                vf.to_str().unwrap(),
            ])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: helm template with its values:\n{}",
            stderr(&out)
        );
    }
}

/// The Flux health expressions in examples/flux/kustomizations.yaml sort each phase the
/// way the Argo CD check does: Healthy ↔ current, Degraded ↔ failed, Progressing ↔
/// inProgress, Suspended ↔ none of them (read from the phase lists in the expressions).
#[test]
fn flux_health_expressions_agree_with_the_argo_cd_check() {
    let Some(lua) = lua() else { return };
    let text = std::fs::read_to_string(repo().join("examples/flux/kustomizations.yaml")).unwrap();
    let exprs = text
        .split("\n---\n")
        .map(|d| yaml_serde::from_str::<Value>(d).unwrap())
        .flat_map(|k| {
            k["spec"]["healthCheckExprs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|e| e["kind"] == "DirectUpdate")
        .expect("a healthCheckExprs entry for DirectUpdate");
    assert_eq!(exprs["apiVersion"], "cupcake.ricardomolendijk.com/v1");
    let dir = repo().join(HEALTH_DIR);
    for case in read_yaml(&dir.join("health_test.yaml"))["tests"]
        .as_array()
        .unwrap()
    {
        let obj = read_yaml(&dir.join(case["inputPath"].as_str().unwrap()));
        let Some(phase) = obj["status"]["phase"].as_str() else {
            continue;
        };
        let generation_current =
            obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
        let (status, _) = run_health(&lua, &dir.join("health.lua"), &obj).unwrap();
        let quoted = format!("'{phase}'");
        let named: Vec<&str> = ["current", "failed", "inProgress"]
            .into_iter()
            .filter(|k| exprs[*k].as_str().unwrap().contains(&quoted))
            .collect();
        let want: &[&str] = match status.as_str() {
            "Healthy" => &["current"],
            "Degraded" => &["failed"],
            "Progressing" if generation_current => &["inProgress"],
            // Waiting for a new generation: inProgress's generation clause covers it.
            "Progressing" => continue,
            "Suspended" | "Unknown" => &[],
            other => panic!("unexpected {other}"),
        };
        assert_eq!(
            named, want,
            "phase {phase} (Argo CD: {status}) in the Flux expressions {exprs}"
        );
    }
    let in_progress = exprs["inProgress"].as_str().unwrap();
    assert!(
        in_progress.contains("!has(status.phase)") && in_progress.contains("observedGeneration"),
        "{in_progress}"
    );
}
