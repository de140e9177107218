use super::*;

#[test]
fn text_is_told_from_random_bytes() {
    assert!(looks_like_text(b"password-password-password-12345\n"));
    assert!(looks_like_text(b"0123456789abcdef0123456789abcdef\r\n"));
    assert!(looks_like_text(b"tab\tseparated words and spaces    "));
    assert!(!looks_like_text(b"password\0password-password-12345"));
    assert!(!looks_like_text(&[0xc3, 0xa9, b'a', b'b']));
    assert!(!looks_like_text(&[0x7f; 32]));
    let w = text_warning(Path::new("/k"), b"x\n");
    assert!(w.contains("its 2 bytes, trailing newline included, are the key as is"));
    assert!(!text_warning(Path::new("/k"), b"xy").contains("newline"));
}

#[cfg(unix)]
mod unix_tests {
    use super::*;

    #[test]
    fn modes() {
        let p = Path::new("/k");
        for ok in [0o600, 0o400, 0o640, 0o440, 0o700, 0o100600] {
            assert!(check_mode(p, ok, true).is_ok(), "{ok:o}");
        }
        for (bad, group_ok, fix) in [
            (0o644, true, "chmod 0640"),
            (0o644, false, "chmod 0600"),
            (0o604, true, "chmod 0600"),
            (0o660, true, "chmod 0640"),
            (0o620, true, "chmod 0600"),
            (0o602, true, "chmod 0600"),
            (0o666, true, "chmod 0640"),
            (0o000_777, true, "chmod 0640"),
            (0o444, false, "chmod 0400"),
        ] {
            let e = check_mode(p, bad, group_ok).unwrap_err();
            assert!(e.contains(fix), "{bad:o}: {e}");
        }
    }

    #[test]
    fn owner_is_root_or_the_relays_user() {
        assert!(owner_ok(0, 0) && owner_ok(0, 998) && owner_ok(998, 998));
        assert!(!owner_ok(65534, 0) && !owner_ok(1000, 998));
        let e = owner_error(Path::new("/k"), 65534, 0);
        assert!(e.starts_with("/k is owned by uid 65534"), "{e}");
        assert!(e.ends_with("run: chown root /k"), "{e}");
        // Not root: the relay's own user is named as the other fix.
        let e = owner_error(Path::new("/k"), 65534, 4242);
        assert!(e.contains("run: chown root /k (or chown 4242 /k"), "{e}");
    }

    #[test]
    fn group_read_only_for_a_group_of_the_relay() {
        let ids = Ids {
            euid: 998,
            egid: 998,
            groups: vec![998, 44],
        };
        assert!(ids.in_group(998) && ids.in_group(44) && !ids.in_group(42));
        let e = group_error(Path::new("/k"), 0o100640, 4_000_000);
        assert_eq!(
            e,
            "/k is readable by its group, gid 4000000, which the relay is not in; run: chmod 0600 \
             /k (or, if that group is meant to read the key, run the relay in it)"
        );
        assert!(group_error(Path::new("/k"), 0o440, 7).contains("chmod 0400"));
    }

    #[test]
    fn ids_are_named_from_the_local_files() {
        // Every Unix system this runs on has root as uid 0 and gid 0.
        assert_eq!(id_shown("uid", "/etc/passwd", 0), "uid 0 (root)");
        assert_eq!(id_name("/etc/passwd", 4_000_000), None);
        assert_eq!(id_name("/nonexistent/passwd", 0), None);
    }
}
