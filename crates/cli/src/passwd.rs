//! `midge passwd`: manage password files with mosquitto_passwd's habits.
//! Argument parsing, prompting and messages only; the file editing and the
//! hashing live in `midge_server::auth::passwd_edit`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Parser;
use midge_server::auth::passwd_edit::{
    split_batch_line, validate_username, EditError, PasswdEditor,
};

const AFTER_HELP: &str = "Examples:
  midge passwd -c midge.passwd alice          create the file, prompt for alice's password
  midge passwd -b midge.passwd bob s3cret     add or change bob, password on the command line
  midge passwd -D midge.passwd bob            delete bob
  midge passwd -U mosquitto.txt               hash every plain-text password in the file
  printf 'a:pw1\\nb:pw2\\n' | midge passwd --stdin midge.passwd

New passwords are hashed with argon2id. Files written by mosquitto_passwd
($6$ and $7$ hashes) are read and kept as they are.";

/// Manage midge password files (like mosquitto_passwd).
#[derive(Debug, Parser)]
#[command(name = "midge passwd", after_help = AFTER_HELP)]
struct Args {
    /// Create a new password file (an existing one is overwritten).
    #[arg(short = 'c')]
    create: bool,
    /// Batch mode: the password is the last argument.
    #[arg(short = 'b')]
    batch: bool,
    /// Delete USER from the file.
    #[arg(short = 'D', conflicts_with_all = ["create", "batch", "upgrade", "stdin"])]
    delete: bool,
    /// Hash every plain-text `user:password` line of FILE.
    #[arg(short = 'U', conflicts_with_all = ["create", "batch", "stdin"])]
    upgrade: bool,
    /// Read `user:password` lines from standard input and add them all.
    #[arg(long = "stdin", conflicts_with = "batch")]
    stdin: bool,
    /// The password file.
    file: PathBuf,
    /// The user to add, change or delete.
    user: Option<String>,
    /// The password (with -b).
    password: Option<String>,
}

/// Where prompts and messages go, so that tests can drive the command.
struct Console<'a> {
    stdin: &'a mut dyn BufRead,
    stderr: &'a mut dyn Write,
    /// Prompt on the terminal without echo (interactive use) rather than
    /// reading lines from standard input (scripts, tests).
    tty: bool,
}

/// Runs `midge passwd`; `args[0]` is the program name. Returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut stdin = stdin.lock();
    let mut stderr = std::io::stderr();
    let mut stdout = std::io::stdout();
    let mut console = Console {
        stdin: &mut stdin,
        stderr: &mut stderr,
        tty,
    };
    run(args, &mut console, &mut stdout)
}

fn run(args: Vec<OsString>, console: &mut Console<'_>, stdout: &mut dyn Write) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            // --help and --version go to stdout with status 0; usage errors
            // to stderr with status 2.
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                console.stderr.write_all(text.as_bytes())
            } else {
                stdout.write_all(text.as_bytes())
            };
            return e.exit_code();
        }
    };
    match execute(&args, console) {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(console.stderr, "midge passwd: {message}");
            1
        }
    }
}

fn execute(args: &Args, console: &mut Console<'_>) -> Result<(), String> {
    let extra = |what: &str| Err(format!("{what} takes no further arguments (see --help)"));
    if args.upgrade {
        if args.user.is_some() {
            return extra("-U FILE");
        }
        let mut editor = open(&args.file)?;
        let count = editor.upgrade().map_err(|e| e.to_string())?;
        editor.write_atomic(&args.file).map_err(|e| e.to_string())?;
        let _ = writeln!(
            console.stderr,
            "{count} password(s) hashed in {}",
            args.file.display()
        );
        return Ok(());
    }
    if args.stdin {
        if args.user.is_some() {
            return extra("--stdin FILE");
        }
        let mut editor = if args.create {
            PasswdEditor::new()
        } else {
            open(&args.file)?
        };
        let count = read_batch(console.stdin, &mut editor)?;
        editor.write_atomic(&args.file).map_err(|e| e.to_string())?;
        let _ = writeln!(
            console.stderr,
            "{count} user(s) written to {}",
            args.file.display()
        );
        return Ok(());
    }
    let Some(user) = args.user.as_deref() else {
        return Err("USER is missing (see --help)".to_owned());
    };
    if args.delete {
        if args.password.is_some() {
            return extra("-D FILE USER");
        }
        let mut editor = open(&args.file)?;
        if !editor.delete(user) {
            return Err(format!("user '{user}' is not in {}", args.file.display()));
        }
        return editor.write_atomic(&args.file).map_err(|e| e.to_string());
    }
    // Check the name before asking for a password that would be thrown away.
    validate_username(user).map_err(|e| e.to_string())?;
    let password = match (&args.password, args.batch) {
        (Some(p), true) => p.clone(),
        (None, true) => return Err("-b needs a PASSWORD argument".to_owned()),
        (Some(_), false) => return Err("a PASSWORD argument needs -b".to_owned()),
        (None, false) => ask_password(console)?,
    };
    let mut editor = if args.create {
        PasswdEditor::new()
    } else {
        open(&args.file)?
    };
    editor
        .set_password(user, password.as_bytes())
        .map_err(|e| e.to_string())?;
    editor.write_atomic(&args.file).map_err(|e| e.to_string())
}

fn open(path: &Path) -> Result<PasswdEditor, String> {
    PasswdEditor::open(path).map_err(|e| match e {
        EditError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!("{} does not exist (use -c to create it)", path.display())
        }
        other => other.to_string(),
    })
}

/// Asks twice, as mosquitto_passwd does, and insists on the same answer.
fn ask_password(console: &mut Console<'_>) -> Result<String, String> {
    let first = prompt(console, "Password: ")?;
    let second = prompt(console, "Reenter password: ")?;
    if first != second {
        return Err("passwords do not match".to_owned());
    }
    if first.is_empty() {
        return Err("empty password".to_owned());
    }
    Ok(first)
}

fn prompt(console: &mut Console<'_>, text: &str) -> Result<String, String> {
    if console.tty {
        return rpassword::prompt_password(text)
            .map_err(|e| format!("cannot read the password: {e}"));
    }
    let mut line = String::new();
    let n = console
        .stdin
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    if n == 0 {
        return Err("standard input ended before the password was given twice".to_owned());
    }
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// Applies `user:password` lines; all or nothing (an error writes nothing).
fn read_batch(stdin: &mut dyn BufRead, editor: &mut PasswdEditor) -> Result<usize, String> {
    let mut count = 0;
    for (index, line) in stdin.lines().enumerate() {
        let n = index + 1;
        let line = line.map_err(|e| format!("standard input, line {n}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let (user, password) = split_batch_line(&line)
            .ok_or_else(|| format!("standard input, line {n}: expected USER:PASSWORD"))?;
        editor
            .set_password(user, password.as_bytes())
            .map_err(|e| format!("standard input, line {n}: {e}"))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_server::auth::PasswordFile;

    struct Outcome {
        code: i32,
        stdout: String,
        stderr: String,
    }

    fn midge_passwd(args: &[&str], stdin: &str) -> Outcome {
        let mut argv = vec![OsString::from("midge passwd")];
        argv.extend(args.iter().map(OsString::from));
        let mut input = stdin.as_bytes();
        let mut stderr = Vec::new();
        let mut stdout = Vec::new();
        let mut console = Console {
            stdin: &mut input,
            stderr: &mut stderr,
            tty: false,
        };
        let code = run(argv, &mut console, &mut stdout);
        Outcome {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn ok(args: &[&str], stdin: &str) {
        let out = midge_passwd(args, stdin);
        assert_eq!(out.code, 0, "{args:?} failed: {}", out.stderr);
    }

    fn fails(args: &[&str], stdin: &str, message: &str) {
        let out = midge_passwd(args, stdin);
        assert_ne!(out.code, 0, "{args:?} should fail");
        assert!(
            out.stderr.contains(message),
            "{args:?}: expected '{message}' in: {}",
            out.stderr
        );
    }

    fn load(path: &Path) -> PasswordFile {
        match PasswordFile::load(path) {
            Ok(f) => f,
            Err(e) => panic!("broker cannot load the file: {e}"),
        }
    }

    #[test]
    fn create_add_change_delete_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let p = path.to_str().expect("utf-8 path");
        ok(&["-c", "-b", p, "alice", "a1"], "");
        ok(&["-b", p, "bob", "b1"], "");
        let f = load(&path);
        assert!(f.verify("alice", b"a1") && f.verify("bob", b"b1"));
        // Change bob; alice is kept.
        ok(&["-b", p, "bob", "b2"], "");
        let f = load(&path);
        assert!(f.verify("alice", b"a1"));
        assert!(f.verify("bob", b"b2") && !f.verify("bob", b"b1"));
        ok(&["-D", p, "alice"], "");
        let f = load(&path);
        assert!(!f.contains("alice") && f.verify("bob", b"b2"));
        fails(&["-D", p, "alice"], "", "user 'alice' is not in");
        // -c starts over.
        ok(&["-c", "-b", p, "carol", "c1"], "");
        let f = load(&path);
        assert_eq!(f.len(), 1);
        assert!(f.verify("carol", b"c1"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("carol:$argon2id$v=19$"), "{text}");
    }

    #[test]
    fn prompts_twice_from_standard_input() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let p = path.to_str().expect("utf-8 path");
        ok(&["-c", p, "dave"], "pw one\npw one\n");
        assert!(load(&path).verify("dave", b"pw one"));
        fails(&[p, "dave"], "x\ny\n", "passwords do not match");
        fails(&[p, "dave"], "only once\n", "ended before");
        fails(&[p, "dave"], "\n\n", "empty password");
        assert!(
            load(&path).verify("dave", b"pw one"),
            "failed attempts change nothing"
        );
    }

    #[test]
    fn batch_from_stdin_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let p = path.to_str().expect("utf-8 path");
        ok(&["-c", "--stdin", p], "u1:p1\n\nu2:p:with:colons\r\n");
        let f = load(&path);
        assert!(f.verify("u1", b"p1"));
        assert!(f.verify("u2", b"p:with:colons"));
        fails(
            &["--stdin", p],
            "u3:p3\nbroken line\n",
            "standard input, line 2: expected USER:PASSWORD",
        );
        fails(&["--stdin", p], "u3:p3\nu4:\n", "line 2: empty password");
        let f = load(&path);
        assert!(!f.contains("u3"), "nothing written after an error");
        ok(&["--stdin", p], "u1:new\n");
        let f = load(&path);
        assert!(f.verify("u1", b"new") && f.verify("u2", b"p:with:colons"));
    }

    #[test]
    fn upgrade_hashes_plain_text_and_keeps_mosquitto_hashes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let p = path.to_str().expect("utf-8 path");
        let mosq = "$7$101$XEV+rvAUUHNAyDOa$j231QZbdOipR9piMxbPrBZhiWQAbCBNuy/ZigzaigZXuGt2d4Y3aWBuNHo9/1i94jBuhsGL2mj2i9ZJv/H7F1w==";
        std::fs::write(&path, format!("# plain\nplain:secret\nmosq:{mosq}\n")).expect("write");
        let out = midge_passwd(&["-U", p], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stderr.contains("1 password(s) hashed"),
            "{}",
            out.stderr
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# plain\nplain:$argon2id$"), "{text}");
        assert!(text.contains(&format!("mosq:{mosq}\n")), "{text}");
        let f = load(&path);
        assert!(f.verify("plain", b"secret") && f.verify("mosq", b"pass"));
    }

    #[test]
    fn usage_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let p = path.to_str().expect("utf-8 path");
        fails(
            &["-b", p, "eve", "pw"],
            "",
            "does not exist (use -c to create it)",
        );
        fails(&["-c", "-b", p, "eve"], "", "-b needs a PASSWORD");
        fails(&["-c", p, "eve", "pw"], "", "needs -b");
        fails(&["-c", "-b", p, "e:ve", "pw"], "", "must not contain ':'");
        fails(&["-c", "-b", p], "", "USER is missing");
        fails(&["-U", p, "eve"], "", "takes no further arguments");
        assert!(!path.exists(), "no file created by failed commands");
        let out = midge_passwd(&["-D", "-c", p, "eve"], "");
        assert_eq!(out.code, 2, "clap usage error");
        assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
        let out = midge_passwd(&["--help"], "");
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("Usage: midge passwd"), "{}", out.stdout);
    }
}
