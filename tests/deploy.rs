//! The container image and the Kubernetes manifests in `deploy/`, checked without a cluster:
//! every document parses, every container's command line parses with swarmer's own flags, and
//! the pieces agree (the Service's port is the master's, the workers reach the Service, as many
//! workers as the master expects, the secret comes from the Secret that is there).

use std::path::Path;
use std::process::Command;

use clap::Parser;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document under deploy/kubernetes, as JSON (PyYAML, the reference parser at hand).
fn documents() -> Vec<serde_json::Value> {
    let script = "import sys, json, yaml, glob\n\
                  docs = []\n\
                  for path in sorted(glob.glob(sys.argv[1] + '/*.yaml')):\n\
                  \x20   docs += [d for d in yaml.safe_load_all(open(path)) if d]\n\
                  print(json.dumps(docs))";
    let dir = root().join("deploy/kubernetes");
    let out = Command::new("python3").args(["-c", script, dir.to_str().unwrap()]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn named<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The container's command line, parsed as swarmer parses it.
fn parse(container: &serde_json::Value) -> swarmer::cli::RunArgs {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    let mut argv = strings(&container["command"]);
    argv.extend(strings(&container["args"]));
    assert_eq!(argv[0], "swarmer", "{argv:?}");
    match swarmer::cli::Cli::try_parse_from(&argv) {
        Ok(cli) => cli.run,
        Err(e) => panic!("{argv:?}: {e}"),
    }
}

fn container(doc: &serde_json::Value) -> &serde_json::Value {
    &doc["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_manifests_parse_and_agree() {
    let docs = documents();
    let master_job = named(&docs, "Job", "swarmer-master");
    let service = named(&docs, "Service", "swarmer-master");
    let workers = named(&docs, "Deployment", "swarmer-worker");
    let secret = named(&docs, "Secret", "swarmer-secret");
    let master = parse(container(master_job));
    let worker = parse(container(workers));
    assert!(master.dist.master && master.headless && master.scenario.is_some());
    assert!(worker.dist.worker);
    // Workers find the master through the Service, on the port it listens on.
    assert_eq!(worker.dist.master_host, service["metadata"]["name"].as_str().unwrap());
    assert_eq!(service["spec"]["ports"][0]["port"], master.dist.master_bind_port as u64);
    assert_eq!(worker.dist.master_port, master.dist.master_bind_port);
    assert_eq!(service["spec"]["selector"]["app"], master_job["spec"]["template"]["metadata"]["labels"]["app"]);
    // Listening beyond the pod's loopback, so the secret must be set on both.
    assert_eq!(master.dist.master_bind_host, "0.0.0.0");
    assert_eq!(workers["spec"]["replicas"], master.dist.expect_workers as u64);
    for doc in [master_job, workers] {
        let env = &container(doc)["env"][0];
        assert_eq!(env["name"], "SWARMER_SECRET");
        assert_eq!(env["valueFrom"]["secretKeyRef"]["name"], secret["metadata"]["name"]);
        assert!(secret["stringData"][env["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap()].is_string());
        assert_eq!(doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
    }
    // The worker offers as many threads as its CPU limit.
    assert_eq!(container(workers)["resources"]["limits"]["cpu"], worker.threads.unwrap().to_string());
}

#[test]
fn the_image_builds_in_two_stages_and_runs_as_a_user() {
    let text = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{text}");
    assert!(text.contains("COPY --from=build /src/target/release/swarmer /usr/local/bin/swarmer"));
    let user = text.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert_ne!(user.trim(), "0");
    assert_ne!(user.trim(), "root");
    // What it copies exists (the manifest names benches, so they must be there to build).
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(root().join(source).exists(), "{source} in {line}");
        }
    }
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/swarmer\"]"));
}
