//! The Dockerfile, checked without a container engine: its runtime stage installs a Debian package for
//! every shared library the kconn binary loads (mapped through this Debian machine's own package
//! database), plus the GSSAPI SASL plugin and kinit that librdkafka loads or runs for Kerberos; it runs as
//! a non-root user with kconn as the entrypoint; its build stage copies everything Cargo needs and uses the
//! crate's minimum Rust version.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const DOCKERFILE: &str = include_str!("../Dockerfile");
/// Packages every Debian image has (Essential: yes).
const BASE: &[&str] = &["libc6", "libgcc-s1"];

/// The lines of one stage, from its `FROM ... AS name` to the next `FROM`.
fn stage(name: &str) -> Vec<&'static str> {
    let mut lines = DOCKERFILE
        .lines()
        .skip_while(|l| !(l.starts_with("FROM ") && l.ends_with(&format!(" AS {name}"))));
    let first = lines.next().unwrap_or_else(|| panic!("no stage {name}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("FROM ")))
        .collect()
}

/// The packages an `apt-get install` in the stage names.
fn installed(stage: &[&str]) -> BTreeSet<String> {
    let text = stage.join("\n").replace("\\\n", " ");
    let install = text
        .split("&&")
        .find(|cmd| cmd.contains("apt-get install"))
        .expect("the stage runs apt-get install");
    install
        .split_whitespace()
        .skip_while(|w| *w != "install")
        .skip(1)
        .filter(|w| !w.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// The packages and everything they depend on (Depends and Pre-Depends, every alternative), by this
/// machine's package database.
fn dependency_closure(packages: &BTreeSet<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = packages.iter().cloned().collect();
    while let Some(pkg) = todo.pop() {
        if !seen.insert(pkg.clone()) {
            continue;
        }
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Depends}, ${Pre-Depends}", &pkg])
            .output()
            .unwrap();
        if !out.status.success() {
            continue;
        }
        for dep in String::from_utf8_lossy(&out.stdout).split([',', '|']) {
            let name = dep.split_whitespace().next().unwrap_or("");
            let name = name.split(':').next().unwrap_or("");
            if !name.is_empty() && !seen.contains(name) {
                todo.push(name.to_string());
            }
        }
    }
    seen
}

/// The Debian package that holds a file, by this machine's package database.
fn package_of(path: &str) -> String {
    let real = std::fs::canonicalize(path).unwrap();
    for candidate in [real.to_str().unwrap(), path] {
        let out = Command::new("dpkg")
            .args(["-S", candidate])
            .output()
            .unwrap();
        if out.status.success() {
            let line = String::from_utf8(out.stdout).unwrap();
            let pkg = line.split(':').next().unwrap().trim().to_string();
            return pkg;
        }
    }
    panic!("no Debian package holds {path}");
}

#[test]
fn the_runtime_image_has_every_library_the_binary_loads() {
    let runtime = installed(&stage("runtime"));
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_kconn"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let libs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split("=>").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
        .collect();
    assert!(
        libs.iter().any(|l| l.contains("libsasl2")) && libs.iter().any(|l| l.contains("libssl")),
        "ldd output looks wrong: {libs:?}"
    );
    // apt installs what a package depends on: libcurl4 brings its HTTP/2, SSH and LDAP libraries.
    let with_dependencies = dependency_closure(&runtime);
    for lib in &libs {
        let pkg = package_of(lib);
        let pkg = pkg.trim_end_matches(":amd64").to_string();
        assert!(
            with_dependencies.contains(&pkg) || BASE.contains(&pkg.as_str()),
            "{lib} comes from the Debian package {pkg}, which the Dockerfile's runtime stage does not install \
             (it installs {runtime:?})"
        );
    }
    // Loaded or run only for Kerberos: the SASL GSSAPI plugin (dlopen) and kinit.
    for pkg in [
        "libsasl2-modules-gssapi-mit",
        "krb5-user",
        "ca-certificates",
    ] {
        assert!(runtime.contains(pkg), "the runtime stage lacks {pkg}");
    }
    let kinit = Command::new("dpkg")
        .args(["-S", "/usr/bin/kinit"])
        .output()
        .unwrap();
    assert!(String::from_utf8(kinit.stdout)
        .unwrap()
        .starts_with("krb5-user:"));
}

#[test]
fn the_runtime_image_runs_kconn_as_a_non_root_user() {
    let runtime = stage("runtime");
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid (Pod runAsNonRoot needs one)");
    assert_ne!(uid, 0);
    let chart = include_str!("../charts/kconn/values.yaml");
    assert!(
        chart.contains(&format!("runAsUser: {uid}")),
        "the chart runs as another uid"
    );
    assert!(runtime.contains(&r#"ENTRYPOINT ["/usr/local/bin/kconn"]"#));
    assert!(runtime.contains(&"ENV TMPDIR=/tmp"));
}

#[test]
fn the_build_stage_has_what_cargo_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let build = stage("build");
    let copied: Vec<&str> = build
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    for path in &copied {
        assert!(
            root.join(path).exists(),
            "the Dockerfile copies {path}, which does not exist"
        );
    }
    // Every target Cargo.toml names must be inside what is copied.
    let manifest: toml_like::Manifest =
        toml_like::parse(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap());
    for path in manifest.target_paths {
        assert!(
            copied
                .iter()
                .any(|c| path == *c || path.starts_with(&format!("{c}/"))),
            "Cargo.toml names {path}, which the build stage does not copy"
        );
    }
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for path in &copied {
        assert!(
            !ignored.lines().any(|l| l.trim() == *path),
            ".dockerignore hides {path}"
        );
    }
    assert!(build
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    let arg = DOCKERFILE
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    assert_eq!(
        Some(arg.to_string()),
        manifest.rust_version,
        "the image's Rust is not the crate's rust-version"
    );
    // The runtime stage copies the examples from the build context.
    assert!(stage("runtime").contains(&"COPY examples /examples"));
}

/// Just enough of Cargo.toml: the file of each target, the path dependencies and `rust-version`.
mod toml_like {
    pub struct Manifest {
        pub target_paths: Vec<String>,
        pub rust_version: Option<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let value = |l: &str| {
            l.split('=')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('"')
                .to_string()
        };
        let mut target_paths: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("path ="))
            .map(value)
            .collect();
        // Path dependencies and patches: `name = { path = "..." }`.
        target_paths.extend(text.lines().filter_map(|l| {
            let rest = l.split_once("{")?.1.split_once("path = \"")?.1;
            Some(rest.split('"').next()?.to_string())
        }));
        // A [[bench]] without a path lives at benches/<name>.rs.
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if l == "[[bench]]" {
                if let Some(name) = lines.peek().filter(|n| n.starts_with("name =")) {
                    target_paths.push(format!("benches/{}.rs", value(name)));
                }
            }
        }
        Manifest {
            target_paths,
            rust_version: text
                .lines()
                .find(|l| l.starts_with("rust-version"))
                .map(value),
        }
    }
}
