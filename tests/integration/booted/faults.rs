//! The failure modes that only show in production, on the booted system: a supervisor that
//! starts while a component has failed, a manager or bus that stops answering, a reader that
//! goes away.

use std::time::{Duration, Instant};

use imageserving::component::SUPERVISOR;

use super::machine::{Layout, Machine};
use super::package::installed;
use super::{in_both_layouts, in_layouts};

fn production_faults(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);

    // A reader that goes away: no panic, no message, the command's own exit code.
    let r = m.sh(
        "ImageServing status | true; ImageServing status --json | head -c 1 >/dev/null; \
                  ImageServing status | head -1 >/dev/null; echo \"exit=$?\"",
    );
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("exit=0"), "{}", r.stdout);
    assert_eq!(r.stderr, "", "a closed pipe was reported");

    // The manager (PID 1 of the box) and then dbus-daemon stop answering: status gives up.
    // (PID 1 is signalled from the host, by its PID there: init ignores SIGSTOP from inside
    // its own namespace; dbus-daemon from inside, by its PID in the box.)
    let dbus = m.main_pid("dbus.service");
    for what in ["PID 1", "dbus-daemon"] {
        signal(&m, what, dbus, "STOP");
        let started = Instant::now();
        let r = m.sh_timeout("ImageServing status", Duration::from_secs(30));
        signal(&m, what, dbus, "CONT");
        let took = started.elapsed();
        let r = r
            .code(4)
            .stderr_one_line()
            .stderr_has("did not answer within 4 s");
        assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
        assert!(
            took < Duration::from_secs(15),
            "{what} stopped: status took {took:?}"
        );
        m.sh("ImageServing status").code(0);
    }

    // svg fails until systemd gives up; then the supervisor is killed. It comes back, says
    // so, and stays up (no restart loop) watching the others.
    m.sh(
        "printf '#!/bin/sh\\nexit 1\\n' >/usr/local/scene7/ImageServing/bin/SvgServer && \
          systemctl restart imageserving-svg.service; true",
    )
    .code(0);
    m.eventually(Duration::from_secs(30), "svg given up", || {
        m.prop("imageserving-svg.service", "ActiveState") == "failed"
    });
    let old = m.main_pid(SUPERVISOR);
    m.sh(&format!("kill -KILL {old}")).code(0);
    m.eventually(
        Duration::from_secs(20),
        "the supervisor back, naming svg",
        || {
            let pid = m.main_pid(SUPERVISOR);
            pid != old
                && pid != 0
                && m.prop(SUPERVISOR, "StatusText")
                    .contains("svg failed, given up by systemd")
        },
    );
    let sup = m.main_pid(SUPERVISOR);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        m.main_pid(SUPERVISOR),
        sup,
        "the supervisor restarted again"
    );
    assert_eq!(m.prop(SUPERVISOR, "ActiveState"), "active");
    assert_eq!(m.prop(SUPERVISOR, "NRestarts"), "1");
    m.sh("journalctl --no-pager -p err -u imageserving-supervisor.service")
        .stdout_has("svg");
}
in_both_layouts!(
    the_production_faults_hold_on_the_booted_system,
    production_faults
);

fn signal(m: &Machine, what: &str, dbus: u32, sig: &str) {
    if what == "PID 1" {
        crate::harness::signal(m.pid1(), sig);
    } else {
        m.sh(&format!("kill -{sig} {dbus}")).code(0);
    }
}

fn failures_that_explain_themselves(layout: Layout) {
    let m = installed(layout);
    // A Tomcat-like component whose environment is wrong says so on stderr and exits.
    m.sh("printf '#!/bin/sh\\necho \"JAVA_HOME is not defined correctly: /opt/jdk-missing\" >&2\\nexit 1\\n' \
          >/usr/local/scene7/ImageServing/bin/SvgServer")
        .code(0);
    let r = m
        .sh_timeout("ImageServing start", Duration::from_secs(90))
        .code(1);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("SVG Server (svg, imageserving-svg.service) failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Last journal lines of imageserving-svg.service:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("JAVA_HOME is not defined correctly"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("'journalctl -u imageserving-svg.service'"),
        "{}",
        r.stderr
    );

    // systemd gave up on svg: the alert hook ran once and, with no command set, wrote one
    // journal entry at priority crit.
    let alert = "imageserving-alert@imageserving-svg.service.service";
    m.eventually(Duration::from_secs(20), "the alert ran", || {
        m.prop(alert, "Result") == "success"
            && m.prop(alert, "ActiveState") == "inactive"
            && !m.prop(alert, "ExecMainStartTimestamp").is_empty()
    });
    let crit = m
        .sh(&format!(
            "journalctl --no-pager -q -p crit -o cat -u {alert}"
        ))
        .code(0)
        .stdout;
    assert_eq!(crit.lines().count(), 1, "{crit}");
    assert!(
        crit.contains(
            "SVG Server (svg, imageserving-svg.service) failed and systemd gave up on it"
        ),
        "{crit}"
    );

    // logs: the journalctl conventions, for the stack or one member.
    m.sh("ImageServing logs svg -n 50")
        .code(0)
        .stdout_has("JAVA_HOME is not defined correctly");
    let all = m
        .sh("ImageServing logs --since '1 hour ago'")
        .code(0)
        .stdout;
    assert!(
        all.contains("imageserving-supervisor") && all.contains("SvgServer"),
        "{all}"
    );
    m.sh("ImageServing logs tomcat")
        .code(2)
        .stderr_one_line()
        .stderr_has("supervisor");
}
in_both_layouts!(
    failures_alert_and_explain_themselves,
    failures_that_explain_themselves
);

/// E-mail, as the original's alerting did: a component that fails until systemd gives up
/// sends exactly one message, over SMTP to the local MTA (Debian's exim on localhost:25,
/// the default relay), to the address set on the alert unit, with a subject naming host,
/// component and what happened, and the journal lines (one of them 100 KB long) in a MIME
/// body whose every line fits RFC 5322's 998 bytes.
fn alert_mail(layout: Layout) {
    let m = installed(layout);
    m.sh("systemctl start exim4").code(0);
    m.sh(
        "useradd -m ops && mkdir -p /etc/systemd/system/imageserving-alert@.service.d && \
          printf '[Service]\\nEnvironment=IMAGESERVING_ALERT_MAIL_TO=ops@localhost\\n' \
              >/etc/systemd/system/imageserving-alert@.service.d/50-mail.conf && \
          install -d -o imageserving-alert /var/lib/alert-test && \
          printf '%s\\n' '[Service]' \
              'Environment=\"IMAGESERVING_ALERT_COMMAND=env >/var/lib/alert-test/env; tee /var/lib/alert-test/stdin | curl -fsS -m 10 --data-binary @- http://127.0.0.1:8099/hook\"' \
              'ReadWritePaths=/var/lib/alert-test' \
              >/etc/systemd/system/imageserving-alert@.service.d/51-command.conf && \
          systemctl daemon-reload",
    )
    .code(0);
    // A webhook's receiver: what it is posted, appended to a file.
    m.sh(
        "printf '%s\\n' 'import http.server as h' 'class H(h.BaseHTTPRequestHandler):' \
             '    def do_POST(s):' \
             '        n = int(s.headers[\"Content-Length\"])' \
             '        open(\"/var/lib/hook-received\", \"ab\").write(s.rfile.read(n))' \
             '        s.send_response(200); s.end_headers()' \
             'h.HTTPServer((\"127.0.0.1\", 8099), H).serve_forever()' >/root/hook.py && \
         systemd-run --unit=test-hook python3 /root/hook.py",
    )
    .code(0);
    m.sh(
        "printf '%s\\n' '#!/bin/sh' 'head -c 100000 /dev/zero | tr \"\\000\" x' 'echo' \
              'echo \"SvgServer: JAVA_HOME is not set\"' 'exit 1' \
              >/usr/local/scene7/ImageServing/bin/SvgServer",
    )
    .code(0);
    let _ = m.sh_timeout("ImageServing start", Duration::from_secs(120));
    m.eventually(Duration::from_secs(60), "a mail in /var/mail/ops", || {
        m.sh("grep -c '^Subject: ' /var/mail/ops 2>/dev/null; true")
            .stdout
            .trim()
            == "1"
    });
    std::thread::sleep(Duration::from_secs(3));
    let mail = m.sh("cat /var/mail/ops").code(0).stdout;
    assert_eq!(
        mail.matches("\nSubject: ").count(),
        1,
        "not exactly one mail:\n{mail}"
    );
    assert!(
        mail.contains("Subject: [Image Serving] ")
            && mail.contains(": svg failed, systemd gave up"),
        "{}",
        mail.lines().take(30).collect::<Vec<_>>().join("\n")
    );
    // MIME: no line over 998 bytes (a relay refuses one), the 100 KB journal line encoded,
    // Date and Message-ID set.
    let longest = mail.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 998, "a line of {longest} bytes in the mail");
    for header in [
        "\nMIME-Version: 1.0",
        "\nContent-Transfer-Encoding: ",
        "\nDate: ",
        "\nMessage-ID: <",
        "\nAuto-Submitted: auto-generated",
    ] {
        assert!(mail.contains(header), "{header:?} missing");
    }
    // Quoted-printable's soft line breaks joined again: the text is whole.
    let body = mail.replace("=\n", "");
    assert!(
        body.contains("SvgServer: JAVA_HOME is not set") && body.contains(&"x".repeat(40_000)),
        "the journal lines are missing"
    );
    assert_eq!(
        m.prop(
            "imageserving-alert@imageserving-svg.service.service",
            "Result"
        ),
        "success"
    );
    // The command mode ran too, with the 100 KB journal line: cut in its environment
    // (the kernel refuses one string over 128 KiB), whole on its stdin.
    let env = m.sh("cat /var/lib/alert-test/env").code(0).stdout;
    let journal = env
        .split("\nIMAGESERVING_ALERT_")
        .find(|v| v.starts_with("JOURNAL="))
        .unwrap_or_default();
    assert!(
        journal.contains("[cut here: ") && journal.len() <= 33 * 1024,
        "IMAGESERVING_ALERT_JOURNAL not cut ({} bytes)",
        journal.len()
    );
    let stdin = m.sh("cat /var/lib/alert-test/stdin").code(0).stdout;
    assert!(
        stdin.len() > 64 * 1024
            && stdin.contains(&"x".repeat(40_000))
            && stdin.contains("JAVA_HOME is not set"),
        "the whole text is not on stdin ({} bytes)",
        stdin.len()
    );
    // The same text reached the webhook, over the network, from the hook's account.
    let posted = m.sh("cat /var/lib/hook-received").code(0).stdout;
    assert!(
        posted.contains("JAVA_HOME is not set") && posted.len() > 64 * 1024,
        "the webhook got {} bytes",
        posted.len()
    );
    // Submitted over SMTP from the hook's closed sandbox (it read the journal lines above
    // through its systemd-journal membership).
    let log = m.sh("cat /var/log/exim4/mainlog").code(0).stdout;
    assert!(
        log.contains("<= imageserving-alert@") && log.contains("P=esmtp"),
        "not submitted over SMTP by the hook:\n{log}"
    );
}
in_both_layouts!(a_give_up_sends_one_mail_through_the_local_mta, alert_mail);

/// Mail to a relay that requires TLS: exim with a certificate for `localhost` from a CA the
/// box trusts (update-ca-certificates), the relay given as `smtp://localhost:25?tls=required`:
/// the alert is submitted over STARTTLS (rustls, the system's CA store), as it is to any relay
/// that is not this machine. The same relay under a name its certificate does not carry
/// (`127.0.0.1`) is refused by the TLS handshake: the mail is not sent, the failure is logged
/// at crit with why, and the alert unit ends failed.
fn alert_mail_over_starttls(layout: Layout) {
    let m = installed(layout);
    m.sh(
        "set -e; cd /root
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=imageserving-test-ca \
             -keyout ca.key -out ca.crt 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout exim.key -out exim.csr 2>/dev/null
         printf 'subjectAltName=DNS:localhost\n' >san.ext
         openssl x509 -req -in exim.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile san.ext -out exim.crt 2>/dev/null
         install -m 0644 ca.crt /usr/local/share/ca-certificates/imageserving-test-ca.crt
         update-ca-certificates >/dev/null 2>&1
         install -m 0640 -g Debian-exim exim.key /etc/exim4/exim.key
         install -m 0644 exim.crt /etc/exim4/exim.crt
         echo 'MAIN_TLS_ENABLE = yes' >>/etc/exim4/exim4.conf.localmacros
         update-exim4.conf
         systemctl restart exim4
         useradd -m ops
         mkdir -p /etc/systemd/system/imageserving-alert@.service.d
         printf '%s\n' '[Service]' 'Environment=IMAGESERVING_ALERT_MAIL_TO=ops@localhost' \
             'Environment=IMAGESERVING_ALERT_SMTP=smtp://localhost:25?tls=required' \
             >/etc/systemd/system/imageserving-alert@.service.d/50-mail.conf
         printf '%s\n' '#!/bin/sh' 'echo \"SvgServer: JAVA_HOME is not set\"' 'exit 1' \
             >/usr/local/scene7/ImageServing/bin/SvgServer
         systemctl daemon-reload",
    )
    .code(0);
    let alert_unit = "imageserving-alert@imageserving-svg.service.service";
    let _ = m.sh_timeout("ImageServing start", Duration::from_secs(120));
    m.eventually(Duration::from_secs(60), "a mail in /var/mail/ops", || {
        m.sh("grep -c '^Subject: ' /var/mail/ops 2>/dev/null; true")
            .stdout
            .trim()
            == "1"
    });
    assert_eq!(m.prop(alert_unit, "Result"), "success");
    // exim's log line for the message received: over esmtp with TLS (X=TLS...).
    let log = m
        .sh("grep '<= imageserving-alert@' /var/log/exim4/mainlog")
        .code(0)
        .stdout;
    assert!(
        log.contains("P=esmtps") && log.contains(" X=TLS"),
        "the alert was not submitted over TLS:\n{log}"
    );

    // The same relay by an address its certificate does not name: no mail, the reason at
    // crit, the alert unit failed.
    m.sh(
        "sed -i 's|smtp://localhost:25|smtp://127.0.0.1:25|' \
             /etc/systemd/system/imageserving-alert@.service.d/50-mail.conf && systemctl daemon-reload",
    )
    .code(0);
    let _ = m.sh_timeout("ImageServing start", Duration::from_secs(120));
    m.eventually(
        Duration::from_secs(60),
        "the second alert's unit failed",
        || m.prop(alert_unit, "ActiveState") == "failed",
    );
    let said = m
        .sh(&format!(
            "journalctl -u {alert_unit} -p crit -o cat --no-pager"
        ))
        .stdout;
    assert!(said.contains("alert NOT mailed to ops@localhost"), "{said}");
    assert_eq!(
        m.sh("grep -c '^Subject: ' /var/mail/ops").stdout.trim(),
        "1",
        "a mail went out over a TLS connection that failed its check"
    );
}
in_layouts!(an_alert_goes_to_a_relay_over_starttls, alert_mail_over_starttls, unified => Unified);
