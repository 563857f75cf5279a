//! Tests of the password file: Mosquitto vectors, argon2, parse errors.

use super::*;
use std::process::Command;

/// Written once by Debian's `mosquitto_passwd` 2.0.11:
/// `mosquitto_passwd -c -b F user pass` ($7$, its default),
/// `mosquitto_passwd -H sha512 -c -b F user pass` ($6$) and
/// `mosquitto_passwd -H sha512-pbkdf2 -I 1000 -b F alice 's3cr3t pässwörd'`.
const MOSQUITTO_7: &str = "$7$101$XEV+rvAUUHNAyDOa$j231QZbdOipR9piMxbPrBZhiWQAbCBNuy/ZigzaigZXuGt2d4Y3aWBuNHo9/1i94jBuhsGL2mj2i9ZJv/H7F1w==";
const MOSQUITTO_6: &str = "$6$lo7jfyGRKLBFdm7B$DUDo9iYjWjQ/pEKHQuZ2+W5NPfSfRjDvY66PBSm+EHYdLONNF3RpwV3WQrkT4hW844xIK9vMNNYVKpUrKVeVzA==";
const MOSQUITTO_7_1000: &str = "$7$1000$Mrx585/3U4hG6cUr$pKUT2EYgDqNgkIxnPM52YThUbWAv6NAq6kJZEY5miesi3uCJgkObnT8kkq+1kbQ9bU9IO1Bp6LMc7DW/xlUmJA==";
/// Written once by `hash_password_with` (argon2id, m=64 KiB, t=1, p=1) for
/// the password "pass", and checked with the reference C implementation
/// (argon2-cffi): pins the PHC format midge writes.
const ARGON2_MIDGE: &str =
    "$argon2id$v=19$m=64,t=1,p=1$NbZoN4/Iu4AlXz3llv1orA$uJhf4uUdgy9PSL7B4CCVJADxgL56KpMkDA7dcFegoGE";
/// Written once by the reference C implementation (argon2-cffi 25.1,
/// `PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)`) for "s3cret".
const ARGON2_REFERENCE: &str =
    "$argon2id$v=19$m=64,t=1,p=1$94YrUytel0tGGT4+8CEwbA$xw75OD7zPfxCaFaN3jPXYdjKgC6CEMIzQJava6ztI48";

fn parse(text: &str) -> Result<PasswordFile, PasswdError> {
    PasswordFile::parse(Path::new("test.passwd"), text.as_bytes())
}

fn line_error(text: &str) -> (usize, LineError) {
    match parse(text) {
        Err(PasswdError::Line { line, reason, .. }) => (line, reason),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn mosquitto_fixed_vectors_verify() {
    let file = parse(&format!(
        "# written by mosquitto_passwd\nuser:{MOSQUITTO_7}\nold:{MOSQUITTO_6}\n\nalice:{MOSQUITTO_7_1000}\n"
    ))
    .expect("valid file");
    assert_eq!(file.len(), 3);
    assert!(file.verify("user", b"pass"));
    assert!(!file.verify("user", b"pass "));
    assert!(!file.verify("user", b"Pass"));
    assert!(file.verify("old", b"pass"));
    assert!(!file.verify("old", b"pas"));
    assert!(file.verify("alice", "s3cr3t pässwörd".as_bytes()));
    assert!(!file.verify("alice", b"s3cr3t"));
    assert!(!file.verify("nobody", b"pass"));
    // The decoy is the first user's hash: its password must still not let
    // an unknown user in.
    assert!(!file.verify("User", b"pass"));
}

#[test]
fn argon2_fixed_vectors_verify() {
    let file = parse(&format!("dev:{ARGON2_MIDGE}\nref:{ARGON2_REFERENCE}\n")).expect("valid file");
    assert!(file.verify("dev", b"pass"));
    assert!(!file.verify("dev", b"wrong"));
    assert!(file.verify("ref", b"s3cret"));
    assert!(!file.verify("ref", b"s3cret\n"));
}

#[test]
fn cached_success_does_not_accept_other_passwords() {
    let file = parse(&format!("user:{MOSQUITTO_7}\nold:{MOSQUITTO_6}\n")).expect("valid file");
    assert!(file.verify("user", b"pass"));
    // Now cached: the same password is accepted again, others are not, and
    // the cache entry of one user does not open another.
    assert!(file.verify("user", b"pass"));
    assert!(!file.verify("user", b"pass2"));
    assert!(!file.verify("old", b"wrong"));
    assert!(file.verify("old", b"pass"));
}

/// Runs Debian's `mosquitto_passwd` now, if installed, and reads its output.
#[test]
fn file_written_by_mosquitto_passwd_now() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mosquitto.passwd");
    let run = |args: &[&str]| Command::new("mosquitto_passwd").args(args).status();
    let p = path.to_str().expect("utf-8 temp path");
    match run(&["-c", "-b", p, "user7", "pw seven"]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: mosquitto_passwd is not installed");
            return;
        }
        Err(e) => panic!("cannot run mosquitto_passwd: {e}"),
        Ok(status) => assert!(status.success(), "mosquitto_passwd failed: {status}"),
    }
    let status = run(&["-H", "sha512", "-b", p, "user6", "pw:six"]).expect("mosquitto_passwd");
    assert!(status.success());
    let status = run(&[
        "-H",
        "sha512-pbkdf2",
        "-I",
        "2000",
        "-b",
        p,
        "user7b",
        "ünïcødé",
    ])
    .expect("mosquitto_passwd");
    assert!(status.success());
    let file = PasswordFile::load(&path).expect("mosquitto file loads");
    assert_eq!(file.len(), 3);
    assert!(file.verify("user7", b"pw seven"));
    assert!(!file.verify("user7", b"pw  seven"));
    assert!(file.verify("user6", b"pw:six"));
    assert!(!file.verify("user6", b"pw"));
    assert!(file.verify("user7b", "ünïcødé".as_bytes()));
    assert!(!file.verify("user7", b"pw:six"));
}

#[test]
fn comments_blank_lines_and_whitespace() {
    let file = parse(&format!(
        "\n# comment\n   # indented comment\n  spaced  :  {MOSQUITTO_6}  \r\n\n"
    ))
    .expect("valid file");
    assert_eq!(file.len(), 1);
    assert!(file.verify("spaced", b"pass"));
}

#[test]
fn empty_file_has_no_users() {
    let file = parse("").expect("empty file is valid");
    assert!(file.is_empty());
    assert!(!file.verify("anyone", b""));
}

#[test]
fn errors_name_the_line() {
    assert_eq!(line_error("# ok\nnocolon\n"), (2, LineError::MissingColon));
    assert_eq!(
        line_error(&format!(":{MOSQUITTO_6}")),
        (1, LineError::EmptyUser)
    );
    assert_eq!(
        line_error("\n\nbob:secret\n"),
        (3, LineError::NotHashed("bob".into()))
    );
    assert_eq!(
        line_error(&format!(
            "a:{MOSQUITTO_6}\nb:{MOSQUITTO_6}\na:{MOSQUITTO_7}\n"
        )),
        (
            3,
            LineError::DuplicateUser {
                user: "a".into(),
                first_line: 1
            }
        )
    );
    assert_eq!(
        line_error("x:$1$abc$def\n"),
        (
            1,
            LineError::UnknownScheme {
                user: "x".into(),
                scheme: "$1$".into()
            }
        )
    );
    let malformed = [
        "x:$6$onlysalt",
        "x:$6$!!!$AAAA",
        "x:$6$c2FsdA==$c2hvcnQ=",
        "x:$7$0$c2FsdA==$AAAA",
        "x:$7$many$c2FsdA==$AAAA",
        "x:$7$101$c2FsdA==",
        "x:$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
        "x:$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$pqYQVUbkrhRP3IUOj1bTSixGvc9lC7pczbXZbPt9Q+E",
        "x:$argon2xx$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$pqYQVUbkrhRP3IUOj1bTSixGvc9lC7pczbXZbPt9Q+E",
    ];
    for text in malformed {
        let (line, reason) = line_error(text);
        assert_eq!(line, 1, "{text}");
        assert!(
            matches!(reason, LineError::Malformed { .. }),
            "{text}: {reason:?}"
        );
    }
}

#[test]
fn non_utf8_line_is_reported() {
    let bytes = b"# fine\nu\xff:$6$x$y\n";
    match PasswordFile::parse(Path::new("f"), bytes) {
        Err(PasswdError::Line {
            line: 2,
            reason: LineError::NotUtf8,
            ..
        }) => {}
        other => panic!("expected NotUtf8 on line 2, got {other:?}"),
    }
}

#[test]
fn load_error_names_the_file() {
    let err = PasswordFile::load(Path::new("/nonexistent/midge.passwd")).expect_err("missing file");
    assert!(
        err.to_string().contains("/nonexistent/midge.passwd"),
        "{err}"
    );
    let err = parse("bad").expect_err("bad line");
    assert_eq!(
        err.to_string(),
        "password file test.passwd, line 1: expected USER:HASH"
    );
}

#[test]
fn debug_output_hides_secrets() {
    let file = parse(&format!("user:{MOSQUITTO_7}\n")).expect("valid file");
    assert!(file.verify("user", b"pass"));
    let shown = format!("{:?}", file.verified);
    assert_eq!(shown, "VerifiedCache { entries: 1 }");
}
