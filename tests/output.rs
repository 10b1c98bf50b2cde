//! Contract §4 (output) and notes-open-points "Output".
mod common;
use common::*;

/// A JSON string as Go's json.Marshal writes it (what the notes require): serde's escaping plus
/// `<`, `>`, `&`, U+2028, U+2029 as \u escapes.
fn go_json(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The suffix dinit appends for service `svc`, stage `stage`, at `ts`.
fn suffix(svc: &str, stage: &str, ts: &str) -> String {
    format!(
        "\"service\":{},\"stage\":\"{stage}\",\"logged\":\"{ts}\"}}",
        go_json(svc)
    )
}

/// Every stderr line is either an own message or a text record with a valid timestamp.
fn assert_stderr_wellformed(r: &Dinit) {
    for l in r.stderr_lines() {
        let ok = !own_messages(std::slice::from_ref(&l)).is_empty()
            || !text_records(format!("{l}\n").as_bytes()).is_empty();
        assert!(ok, "malformed stderr line {l:?}\n{}", r.dump());
    }
}

/// Runs one service `a` whose run is `script`, JSON mode, default level; expects exit 0.
fn run_a(script: &str) -> (TestDir, Dinit) {
    let d = TestDir::new();
    d.svc("a").run(script);
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    (d, r)
}

fn run_a_text(script: &str) -> (TestDir, Dinit) {
    let d = TestDir::new();
    d.svc("a").run(script);
    let r = launch(&d).text().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    (d, r)
}

/// Expect: a JSON object line gets `"service","stage","logged"` appended after its last member,
/// its own members and spacing kept: `{"a":1}` -> `{"a":1,"service":"a","stage":"run",
/// "logged":"<ts>"}`; `{"test": "foo"}` keeps its space.
#[test]
fn json_object_gets_fields() {
    let (_d, r) = run_a("#!/bin/sh\necho '{\"a\":1}'\necho '{\"test\": \"foo\"}'\n");
    let j = r.json();
    assert_eq!(j.len(), 2, "{}", r.dump());
    assert_eq!(
        j[0].raw,
        format!("{{\"a\":1,{}", suffix("a", "run", j[0].logged()))
    );
    assert_eq!(
        j[1].raw,
        format!("{{\"test\": \"foo\",{}", suffix("a", "run", j[1].logged()))
    );
    assert_stderr_wellformed(&r);
}

/// Expect (change): `{}` -> `{"service":"a","stage":"run","logged":"<ts>"}` (valid JSON).
#[test]
fn empty_object() {
    let (_d, r) = run_a("#!/bin/sh\necho '{}'\n");
    let j = r.json();
    assert_eq!(j.len(), 1, "{}", r.dump());
    assert_eq!(j[0].raw, format!("{{{}", suffix("a", "run", j[0].logged())));
}

/// Expect (change): colliding keys get dinit's value and appear once; other members keep their
/// order; nested objects are not touched.
#[test]
fn key_collisions() {
    let (_d, r) = run_a(
        "#!/bin/sh\n\
         echo '{\"service\":\"x\",\"a\":1}'\n\
         echo '{\"stage\":\"s\",\"b\":2,\"logged\":\"l\"}'\n\
         echo '{\"n\":{\"service\":\"nested\"},\"service\":\"x\",\"z\":0}'\n",
    );
    let j = r.json();
    assert_eq!(j.len(), 3, "{}", r.dump());
    for x in &j {
        assert_eq!(x.service(), "a", "{}", x.raw);
        assert_eq!(x.stage(), "run", "{}", x.raw);
        assert!(is_timestamp(x.logged()), "{}", x.raw);
        assert_eq!(x.key_count("stage"), 1, "duplicate key in {}", x.raw);
        assert_eq!(x.key_count("logged"), 1, "duplicate key in {}", x.raw);
    }
    assert_eq!(
        j[0].key_count("service"),
        1,
        "duplicate key in {}",
        j[0].raw
    );
    assert_eq!(j[0].obj["a"], 1);
    assert_eq!(j[1].obj["b"], 2);
    assert_eq!(j[2].key_count("service"), 2, "{}", j[2].raw); // the nested one + dinit's
    assert_eq!(j[2].obj["n"]["service"], "nested");
    assert!(
        j[2].raw.find("\"n\"").unwrap() < j[2].raw.find("\"z\"").unwrap(),
        "member order changed: {}",
        j[2].raw
    );
    assert!(
        j[2].raw.find("\"z\"").unwrap() < j[2].raw.rfind("\"service\"").unwrap(),
        "{}",
        j[2].raw
    );
}

/// Expect (change): an object surrounded by spaces/tabs is still an object (fields added).
#[test]
fn whitespace_around_object() {
    let (_d, r) = run_a("#!/bin/sh\nprintf '  {\"a\":1}  \\n\\t{\"a\":2}\\t\\n'\n");
    let j = r.json();
    assert_eq!(j.len(), 2, "{}", r.dump());
    assert_eq!(j[0].obj["a"], 1, "{}", j[0].raw);
    assert_eq!(j[1].obj["a"], 2, "{}", j[1].raw);
    assert!(j.iter().all(|x| x.msg().is_none()), "{}", r.dump());
}

/// Expect (change): every non-object line (text, array, number, string, literal, broken JSON,
/// two objects) is written as `{"msg":<line>,"service":…,"stage":…,"logged":…}`, in order, and
/// no `not JSON stdout` warning is printed.
#[test]
fn non_json_lines_wrapped() {
    let lines = [
        "hello world",
        "[1,2]",
        "42",
        "\"str\"",
        "null",
        "true",
        "{not json}",
        "{\"a\":1} {\"b\":2}",
        "{\"a\":1",
        "}{",
        "  x  ",
    ];
    let d = TestDir::new();
    std::fs::write(d.s("lines"), lines.join("\n") + "\n").unwrap();
    d.svc("a").run(&d.sh("cat \"$S/lines\""));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let j = r.json();
    assert_eq!(j.len(), lines.len(), "{}", r.dump());
    for (x, l) in j.iter().zip(lines) {
        assert_eq!(
            x.raw,
            format!(
                "{{\"msg\":{},{}",
                go_json(l),
                suffix("a", "run", x.logged())
            )
        );
    }
    assert!(!r.stderr_str().contains("not JSON"), "{}", r.dump());
}

/// Expect: the service name is escaped as Go does (`<`, `>`, `&` as \u escapes, quotes
/// escaped); (change) `msg` strings too.
#[test]
fn go_style_escaping() {
    let d = TestDir::new();
    let name = "we<b>&\"x";
    d.svc(name)
        .run("#!/bin/sh\necho '{\"k\":1}'\necho 'a<b>&c'\n");
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let j = r.json();
    assert!(!j.is_empty(), "{}", r.dump());
    assert_eq!(
        j[0].raw,
        format!("{{\"k\":1,{}", suffix(name, "run", j[0].logged()))
    );
    assert!(
        j[0].raw
            .contains("\"service\":\"we\\u003cb\\u003e\\u0026\\\"x\""),
        "{}",
        j[0].raw
    );
    assert_eq!(j.len(), 2, "{}", r.dump());
    assert_eq!(
        j[1].raw,
        format!(
            "{{\"msg\":\"a\\u003cb\\u003e\\u0026c\",{}",
            suffix(name, "run", j[1].logged())
        )
    );
}

/// Expect (change): binary bytes and invalid UTF-8 become valid JSON: control bytes escaped,
/// each invalid byte U+FFFD; an "object" containing invalid UTF-8 also yields valid JSON with
/// the three fields.
#[test]
fn binary_and_invalid_utf8() {
    let d = TestDir::new();
    d.svc("a").run(&d.py("import sys\n\
         sys.stdout.buffer.write(b'bin\\x00\\x01\\x1b\\xff\\xfeok\\x80\\x7f\\n')\n\
         sys.stdout.buffer.write(b'{\"a\":\"\\xff\"}\\n')\n\
         sys.stdout.buffer.write('caf\\u00e9 \\u2028 \\U0001F600\\n'.encode())\n"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let j = r.json(); // panics unless every line is valid UTF-8 JSON with the fields
    assert_eq!(j.len(), 3, "{}", r.dump());
    assert_eq!(
        j[0].msg(),
        Some("bin\u{0}\u{1}\u{1b}\u{FFFD}\u{FFFD}ok\u{FFFD}\u{7f}"),
        "{}",
        j[0].raw
    );
    assert_eq!(j[1].service(), "a");
    assert!(
        j[1].raw.contains('\u{FFFD}') || j[1].raw.contains("\\ufffd"),
        "{}",
        j[1].raw
    );
    assert_eq!(j[2].msg(), Some("café \u{2028} \u{1F600}"), "{}", j[2].raw);
}

/// Expect: `\r\n` -> one `\r` stripped (object still recognised); a `\r` elsewhere kept.
#[test]
fn crlf() {
    let (_d, r) = run_a("#!/bin/sh\nprintf '{\"crlf\":1}\\r\\ntext\\r\\na\\rb\\nx\\r\\r\\n'\n");
    let j = r.json();
    assert_eq!(j.len(), 4, "{}", r.dump());
    assert_eq!(j[0].obj["crlf"], 1, "{}", j[0].raw);
    assert!(
        j[0].raw.starts_with("{\"crlf\":1,\"service\""),
        "{}",
        j[0].raw
    );
    assert_eq!(j[1].msg(), Some("text"));
    assert_eq!(j[2].msg(), Some("a\rb"));
    assert_eq!(j[3].msg(), Some("x\r"));
}

/// Expect: `\r\n` handling in text mode: CR before LF stripped, other CRs kept raw.
#[test]
fn crlf_text_mode() {
    let (_d, r) = run_a_text("#!/bin/sh\nprintf 'one\\r\\na\\rb\\n'\n");
    let t = r.stdout_records();
    assert_eq!(t.len(), 2, "{}", r.dump());
    assert_eq!(t[0].line, b"one");
    assert_eq!(t[1].line, b"a\rb");
}

/// Expect: empty lines (also `\r\n` alone) are dropped in both modes and on stderr.
#[test]
fn empty_lines_dropped() {
    let script =
        "#!/bin/sh\nprintf '\\n\\n\\r\\n{\"x\":1}\\n\\n\\r\\n'\nprintf '\\n\\r\\ne\\n\\n' >&2\n";
    let (_d, r) = run_a(script);
    let j = r.json();
    assert_eq!(j.len(), 1, "{}", r.dump());
    assert_eq!(j[0].obj["x"], 1);
    let e: Vec<_> = r
        .stderr_records()
        .into_iter()
        .filter(|t| t.name == "a")
        .collect();
    assert_eq!(e.len(), 1, "{}", r.dump());
    assert_eq!(e[0].line, b"e");
    let (_d, r) = run_a_text(script);
    let t = r.stdout_records();
    assert_eq!(t.len(), 1, "{}", r.dump());
    assert_eq!(t[0].line, b"{\"x\":1}");
}

/// Expect: a final line without `\n` is emitted at EOF (a trailing `\r` stripped there too), on
/// stdout and stderr.
#[test]
fn final_line_without_newline() {
    let (_d, r) = run_a("#!/bin/sh\nprintf '{\"first\":1}\\n{\"last\":1}'\n");
    let j = r.json();
    assert_eq!(j.len(), 2, "{}", r.dump());
    assert_eq!(j[1].obj["last"], 1);
    let (_d, r) = run_a_text("#!/bin/sh\nprintf 'cr-tail\\r' >&2\nprintf 'x\\nno-newline'\n");
    let a: Vec<_> = r.stdout_records().into_iter().map(|t| t.text()).collect();
    assert_eq!(a, vec!["x", "no-newline"], "{}", r.dump());
    let e: Vec<_> = r
        .stderr_records()
        .into_iter()
        .filter(|t| t.name == "a")
        .collect();
    assert_eq!(e.len(), 1, "{}", r.dump());
    assert_eq!(e[0].line, b"cr-tail");
}

/// Expect: stderr is never JSON-processed: lines pass as text records `<ts> a/run: <line>`, raw
/// bytes kept; nothing of it on stdout.
#[test]
fn stderr_is_text() {
    let d = TestDir::new();
    d.svc("a")
        .run(&d.py("import sys\nsys.stderr.buffer.write(b'{\"a\":1}\\nplain\\nraw\\xff\\n')\n"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(r.stdout().is_empty(), "{}", r.dump());
    let e: Vec<_> = r
        .stderr_records()
        .into_iter()
        .filter(|t| t.name == "a" && t.stage == "run")
        .collect();
    let lines: Vec<&[u8]> = e.iter().map(|t| t.line.as_slice()).collect();
    assert_eq!(
        lines,
        vec![&b"{\"a\":1}"[..], b"plain", b"raw\xff"],
        "{}",
        r.dump()
    );
}

/// Expect: text mode writes every stdout line as `<ts> a/run: <line>`, raw bytes, no JSON
/// handling, no warnings.
#[test]
fn text_mode_stdout() {
    let d = TestDir::new();
    d.svc("a").run(&d.py(
        "import sys\nsys.stdout.buffer.write(b'{\"a\":1}\\nhello\\n  spaced  \\nbin\\xff\\x01\\n')\n",
    ));
    let r = launch(&d).text().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let t = r.stdout_records();
    let lines: Vec<&[u8]> = t.iter().map(|t| t.line.as_slice()).collect();
    assert_eq!(
        lines,
        vec![&b"{\"a\":1}"[..], b"hello", b"  spaced  ", b"bin\xff\x01"],
        "{}",
        r.dump()
    );
    assert!(t.iter().all(|t| t.name == "a" && t.stage == "run"));
    assert_eq!(split_lines(&r.stdout()).len(), 4, "{}", r.dump());
    // The one warning is why the container stopped (contract §6).
    let warnings = r.own_texts("warning");
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("a/run: PID ")
            && warnings[0].ends_with(" finished with status 0, stopping all services"),
        "{}",
        r.dump()
    );
}

/// A service with all of run, log/run and terminate writing to stdout and stderr; shutdown by
/// SIGTERM to dinit. Returns the finished dinit.
fn stages_run(d: &TestDir, text: bool) -> Dinit {
    d.svc("a")
        .run(&d.long_running("a", "echo hello-from-run\necho run-err >&2"))
        .log_run("#!/bin/sh\nwhile read -r l; do echo \"L:$l\"; done\necho log-err >&2\n")
        .terminate(
            "#!/bin/sh\necho '{\"from\":\"term\"}'\necho term-err >&2\nkill \"$DINIT_PID\"\n",
        );
    let mut l = launch(d);
    if text {
        l = l.text();
    }
    let mut r = l.spawn();
    d.wait_file("a.started", LONG);
    r.wait_stdout_contains("L:hello-from-run", LONG);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    r
}

/// Expect: logger stdout under stage `run`, terminate stdout under `term` (JSON applies), and on
/// stderr `a/run: run-err`, `a/log: log-err`, `a/term: term-err`.
#[test]
fn stages_json() {
    let d = TestDir::new();
    let r = stages_run(&d, false);
    let j = r.json();
    assert!(
        j.iter()
            .any(|x| x.stage() == "run" && x.msg() == Some("L:hello-from-run")),
        "{}",
        r.dump()
    );
    assert!(
        j.iter()
            .any(|x| x.stage() == "term" && x.obj.get("from") == Some(&Value::from("term"))),
        "{}",
        r.dump()
    );
    assert!(
        j.iter().all(|x| x.service() == "a" && x.stage() != "log"),
        "{}",
        r.dump()
    );
    let e: Vec<(String, String)> = r
        .stderr_records()
        .iter()
        .map(|t| (t.stage.clone(), t.text()))
        .collect();
    for (stage, line) in [("run", "run-err"), ("log", "log-err"), ("term", "term-err")] {
        assert!(
            e.contains(&(stage.to_string(), line.to_string())),
            "missing a/{stage}: {line}\n{}",
            r.dump()
        );
    }
    assert_stderr_wellformed(&r);
}

/// Expect: same stages in text mode: `a/run: L:hello-from-run`, `a/term: {"from":"term"}`.
#[test]
fn stages_text() {
    let d = TestDir::new();
    let r = stages_run(&d, true);
    let t: Vec<(String, String)> = r
        .stdout_records()
        .iter()
        .map(|t| (t.stage.clone(), t.text()))
        .collect();
    assert!(
        t.contains(&("run".into(), "L:hello-from-run".into())),
        "{}",
        r.dump()
    );
    assert!(
        t.contains(&("term".into(), "{\"from\":\"term\"}".into())),
        "{}",
        r.dump()
    );
}

/// Expect (add): `finish` output is captured under stage `finish` (stdout JSON, stderr text).
#[test]
fn stage_finish() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\nexit 0\n")
        .finish("#!/bin/sh\necho '{\"from\":\"finish\"}'\necho finish-err >&2\n");
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.json()
            .iter()
            .any(|x| x.stage() == "finish" && x.obj.get("from") == Some(&Value::from("finish"))),
        "{}",
        r.dump()
    );
    assert!(
        r.stderr_records()
            .iter()
            .any(|t| t.stage == "finish" && t.text() == "finish-err"),
        "{}",
        r.dump()
    );
}

/// A python `run` writing one line of `len` bytes made of `unit` repeated (cut to `len`), then
/// `{"after":1}`, then exiting 0.
fn long_line_script(d: &TestDir, expr: &str) -> String {
    d.py(&format!(
        "import sys\nline = {expr}\nopen(S + '/line', 'wb').write(line)\n\
         sys.stdout.buffer.write(line + b'\\n')\nsys.stdout.buffer.write(b'{{\"after\":1}}\\n')\nsys.stdout.flush()\n"
    ))
}

/// Expect (change): a 1 MiB line arrives complete as consecutive records of at most 65,536
/// bytes whose concatenation is the line; the service is not killed (exit 0); the next line
/// follows.
#[test]
fn one_mib_line_json() {
    let d = TestDir::new();
    d.svc("a").run(&long_line_script(
        &d,
        "b''.join(b'%08d' % i for i in range(131072))",
    ));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let line = std::fs::read(d.s("line")).unwrap();
    assert_eq!(line.len(), 1 << 20);
    let j = r.json();
    let (last, chunks) = j
        .split_last()
        .unwrap_or_else(|| panic!("no output\n{}", r.dump()));
    assert_eq!(
        last.obj.get("after"),
        Some(&Value::from(1)),
        "the line after is missing/out of order"
    );
    let mut joined = Vec::new();
    for c in chunks {
        let m = c
            .msg()
            .unwrap_or_else(|| panic!("chunk without msg: {}", trunc(&c.raw)));
        assert!(m.len() <= 65536, "chunk of {} bytes", m.len());
        joined.extend_from_slice(m.as_bytes());
    }
    assert!(chunks.len() >= 16, "{} chunks", chunks.len());
    assert!(
        joined == line,
        "concatenated chunks ({} bytes) differ from the line",
        joined.len()
    );
}

/// Expect (change): the same in text mode: `<ts> a/run: <chunk>` records, chunks <= 65,536
/// bytes, concatenation == line.
#[test]
fn one_mib_line_text() {
    let d = TestDir::new();
    d.svc("a").run(&long_line_script(
        &d,
        "b''.join(b'%08d' % i for i in range(131072))",
    ));
    let r = launch(&d).text().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let line = std::fs::read(d.s("line")).unwrap();
    let t = r.stdout_records();
    let (last, chunks) = t
        .split_last()
        .unwrap_or_else(|| panic!("no output\n{}", r.dump()));
    assert_eq!(last.line, b"{\"after\":1}");
    assert!(chunks.iter().all(|c| c.line.len() <= 65536));
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.line.clone()).collect();
    assert!(
        joined == line,
        "concatenated chunks ({} bytes) differ from the line",
        joined.len()
    );
}

/// Expect: a line of exactly 65,536 bytes is one record; (change) 65,537 bytes -> two records
/// of 65,536 and 1 bytes.
#[test]
fn long_line_boundaries() {
    for (len, want) in [
        (65535usize, vec![65535usize]),
        (65536, vec![65536]),
        (65537, vec![65536, 1]),
    ] {
        let d = TestDir::new();
        d.svc("a").run(&long_line_script(
            &d,
            &format!("(b'0123456789abcdef' * 5000)[:{len}]"),
        ));
        let r = launch(&d).text().run();
        assert_eq!(r.code(), 0, "len {len}: {}", r.dump());
        let t = r.stdout_records();
        let sizes: Vec<usize> = t.iter().map(|c| c.line.len()).collect();
        let mut expect = want.clone();
        expect.push(11); // {"after":1}
        assert_eq!(sizes, expect, "len {len}");
    }
}

/// Expect (change, notes): a long line of 2-byte UTF-8 characters is cut without splitting a
/// character: no U+FFFD in any chunk, concatenation == the line.
#[test]
fn long_line_cut_keeps_utf8_characters() {
    let d = TestDir::new();
    d.svc("a")
        .run(&long_line_script(&d, "('x' + 'é' * 200000).encode()"));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let line = std::fs::read(d.s("line")).unwrap();
    let j = r.json();
    let (_, chunks) = j.split_last().unwrap();
    let mut joined = String::new();
    for c in chunks {
        let m = c.msg().unwrap();
        assert!(!m.contains('\u{FFFD}'), "a chunk split a character");
        assert!(m.len() <= 65536);
        joined.push_str(m);
    }
    assert!(
        joined.as_bytes() == line.as_slice(),
        "concatenation differs"
    );
}

/// Expect (change): 100,000 JSON lines written just before the service exits all arrive, in
/// order, nothing else lost.
#[test]
fn many_lines_before_exit_json() {
    let d = TestDir::new();
    d.svc("a").run(&d.py(
        "import sys\nw = sys.stdout.buffer\nfor i in range(100000):\n    w.write(b'{\"n\":%d}\\n' % i)\nw.flush()\n",
    ));
    let r = launch(&d).run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let j = r.json();
    assert_eq!(j.len(), 100000, "lines lost");
    for (i, x) in j.iter().enumerate() {
        assert_eq!(x.obj["n"], i as u64, "out of order at {i}");
    }
}

/// Expect (change): 100,000 lines on stdout and 100,000 on stderr (text mode), written just
/// before exit, all arrive in order per stream.
#[test]
fn many_lines_before_exit_text_both_streams() {
    let d = TestDir::new();
    d.svc("a").run(&d.py(
        "import sys\no = sys.stdout.buffer\ne = sys.stderr.buffer\n\
         for i in range(100000):\n    o.write(b'o%d\\n' % i)\n    e.write(b'e%d\\n' % i)\no.flush()\ne.flush()\n",
    ));
    let r = launch(&d).text().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let o = r.stdout_records();
    assert_eq!(o.len(), 100000, "stdout lines lost");
    assert!(
        o.iter()
            .enumerate()
            .all(|(i, t)| t.line == format!("o{i}").as_bytes()),
        "stdout out of order"
    );
    let e: Vec<_> = r
        .stderr_records()
        .into_iter()
        .filter(|t| t.name == "a")
        .collect();
    assert_eq!(e.len(), 100000, "stderr lines lost");
    assert!(
        e.iter()
            .enumerate()
            .all(|(i, t)| t.line == format!("e{i}").as_bytes()),
        "stderr out of order"
    );
}

/// Expect: at `none` no own message at all, while service output is complete: stdout JSON and
/// (change) non-JSON lines both on stdout, the service's stderr line on stderr; exit code 3.
#[test]
fn level_none_hides_own_messages_only() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\necho '{\"j\":1}'\necho plain\necho oops >&2\nexit 3\n");
    let r = launch(&d).env("DINIT_LOG_LEVEL", "none").run();
    assert_eq!(r.code(), 3, "{}", r.dump());
    assert!(
        r.own().is_empty(),
        "own messages at level none\n{}",
        r.dump()
    );
    let e = r.stderr_lines();
    assert_eq!(e.len(), 1, "{}", r.dump());
    assert!(e[0].ends_with(" a/run: oops"), "{}", r.dump());
    let j = r.json();
    assert_eq!(j.len(), 2, "{}", r.dump());
    assert_eq!(j[0].obj["j"], 1);
    assert_eq!(j[1].msg(), Some("plain"));
}

/// Expect: at `none` even the "no services found" warning is hidden; exit 0.
#[test]
fn level_none_empty_dir_silent() {
    let d = TestDir::new();
    let r = launch(&d).env("DINIT_LOG_LEVEL", "none").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.stderr().is_empty() && r.stdout().is_empty(),
        "{}",
        r.dump()
    );
}

/// Expect: at `error` the error line of a broken run shows, no warning/info; at `warn` the
/// warning `no services found, exiting` shows but no info line.
#[test]
fn level_error_and_warn() {
    let d = TestDir::new();
    d.svc("a").file("run", "#!/bin/sh\n", 0o644);
    let r = launch(&d).env("DINIT_LOG_LEVEL", "error").run();
    assert_eq!(r.code(), 1, "{}", r.dump());
    let own = r.own();
    assert!(
        !own.is_empty() && own.iter().all(|o| o.level == "error"),
        "{}",
        r.dump()
    );
    let d = TestDir::new();
    let r = launch(&d).env("DINIT_LOG_LEVEL", "warn").run();
    let own = r.own();
    assert!(
        own.iter()
            .any(|o| o.level == "warning" && o.text == "no services found, exiting"),
        "{}",
        r.dump()
    );
    assert!(
        own.iter().all(|o| o.level != "info" && o.level != "debug"),
        "{}",
        r.dump()
    );
}

/// Expect: at `info` the lifecycle lines appear with exact texts:
/// `a/run: starting`, `a/run: running with PID <n>`, `a/run: PID <n> finished with status 0`.
#[test]
fn info_lines() {
    let d = TestDir::new();
    d.svc("a").run("#!/bin/sh\nexit 0\n");
    let r = launch(&d).info().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let pid = r
        .reported_pid("a/run")
        .unwrap_or_else(|| panic!("{}", r.dump()));
    assert!(r.has_own("info", "a/run: starting"), "{}", r.dump());
    // Its end stops the container: a warning instead of the info line (contract §6).
    assert!(
        r.has_own(
            "warning",
            &format!("a/run: PID {pid} finished with status 0, stopping all services")
        ),
        "{}",
        r.dump()
    );
    assert_stderr_wellformed(&r);
}

/// Expect (add): with stdout and stderr on one pipe, every line a process wrote (to either
/// stream) comes before dinit's `finished` line for it.
#[test]
fn lines_before_finished_line() {
    let d = TestDir::new();
    d.svc("a").run(&d.py(
        "import sys\nfor i in range(2000):\n    sys.stdout.write('{\"n\":%d}\\n' % i)\n    sys.stderr.write('e%d\\n' % i)\n\
         sys.stdout.flush()\nsys.stderr.flush()\n",
    ));
    let r = launch(&d).info().merged().run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    let lines = r.stderr_lines();
    let fin = lines
        .iter()
        .position(|l| {
            l.contains("dinit: warning: a/run: PID ")
                && l.contains("finished with status 0, stopping all services")
        })
        .unwrap_or_else(|| panic!("no finished line\n{}", r.dump()));
    let last_out = lines
        .iter()
        .rposition(|l| l.contains("\"n\":1999"))
        .expect("last stdout line");
    let last_err = lines
        .iter()
        .rposition(|l| l.ends_with(" a/run: e1999"))
        .expect("last stderr line");
    assert!(last_out < fin, "stdout line after the finished line");
    assert!(last_err < fin, "stderr line after the finished line");
}

/// Expect: an orphan that keeps the service's stdout open does not make dinit hang at exit
/// (policy ignore: it is not waited for); the line written before is not lost; exit 0.
#[test]
fn orphan_holding_pipe_does_not_block_exit() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\n( sleep 100000 & )\necho '{\"before\":1}'\nexit 0\n");
    let r = launch(&d).env("DINIT_REPARENTING_POLICY", "ignore").run();
    assert_eq!(r.code(), 0, "{}", r.dump());
    assert!(
        r.json().iter().any(|x| x.obj.get("before").is_some()),
        "{}",
        r.dump()
    );
}

/// Expect: every own message and record carries a `YYYY-MM-DDTHH:MM:SS.mmmZ` UTC timestamp
/// close to now.
#[test]
fn timestamps_are_utc_millis() {
    let d = TestDir::new();
    d.svc("a")
        .run("#!/bin/sh\necho '{\"a\":1}'\necho err >&2\nexit 0\n");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = launch(&d).info().run();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut stamps: Vec<String> = r.own().into_iter().map(|o| o.ts).collect();
    stamps.extend(r.stderr_records().into_iter().map(|t| t.ts));
    stamps.extend(r.json().iter().map(|j| j.logged().to_string()));
    assert!(stamps.len() >= 4, "{}", r.dump());
    for s in stamps {
        let ms = ts_millis(&s);
        assert!(
            ms >= before - 1000 && ms <= after + 1000,
            "timestamp {s} is not UTC now"
        );
    }
    assert_stderr_wellformed(&r);
}
