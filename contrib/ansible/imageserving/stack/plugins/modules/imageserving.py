#!/usr/bin/python
# -*- coding: utf-8 -*-
# MIT License (see the imageserving repository's Cargo.toml)
"""Start, stop and restart an Image Serving stack through the host's ImageServing command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: imageserving
short_description: Start, stop and restart an Image Serving stack
version_added: "0.1.0"
description:
  - Drives the Image Serving stack of the host (the Server Supervisor, the Platform Server
    C(ps), the Image Server C(is) and the SVG server C(svg), each a systemd unit under
    C(imageserving.target)) through the host's own C(ImageServing) command, so that what
    it does is what an operator on the host would do.
  - Idempotent. It reads C(ImageServing status --json) first and acts only when the stack
    is not in the state asked for. C(restarted) always acts.
  - Every result carries the host's status document as C(ImageServing status --json)
    prints it, read after the action.
  - A failure carries the tool's own one-line message and exit code (2 bad arguments,
    4 permission denied, 5 not installed, 1 a unit failed).
options:
  state:
    description:
      - C(started) starts the stack (or makes sure the component named runs) and returns
        once it serves. Nothing is done when the supervisor and every component asked for
        already run.
      - C(stopped) stops the stack (or only the component named, which the supervisor then
        leaves stopped) and returns once no process of what was stopped is left.
      - C(restarted) restarts the stack, or only the component named (the others keep their
        processes), and returns once it serves again.
    type: str
    required: true
    choices: [started, stopped, restarted]
  component:
    description:
      - Act on this component only; C(ps), C(is) or C(svg), or the long names C(platform)
        and C(image).
      - Leave it out to act on the whole stack. An empty value does not mean the whole
        stack. Ansible refuses it, as any name not in the choices, before anything runs; a
        variable that may be unset is passed with C(default(omit)), not C(default('')).
      - With C(state=started), a component that does not run is started alone
        (C(ImageServing restart NAME)); when the supervisor does not run, the whole stack is
        started (C(ImageServing start)), as the components are watched by it.
    type: str
    choices: [ps, is, svg, platform, image]
  scope:
    description:
      - C(system) drives the system manager's units (the package's install); C(user) the
        user manager of the account Ansible connects as (a rootless stack).
    type: str
    choices: [system, user]
    default: system
  executable:
    description:
      - The C(ImageServing) command to run; by default the one on the host's C(PATH)
        (the packages install C(/usr/bin/ImageServing)).
    type: path
notes:
  - Check mode is supported. It reads the status and reports what would change, and
    changes nothing.
  - The host needs the imageserving package (deb or rpm) and Python 3.6 or newer.
  - Permission comes from the host's polkit rules (root, or a member of the group the
    package delegates to); the module never asks for a password (C(--no-ask-password)).
  - Tested with ansible-core 2.14 (Debian 12).
author:
  - imageserving developers (@imageserving)
"""

EXAMPLES = r"""
- name: The stack runs
  imageserving.stack.imageserving:
    state: started

- name: The SVG server stopped for maintenance; the others keep serving
  imageserving.stack.imageserving:
    state: stopped
    component: svg

- name: Restart the Image Server alone
  imageserving.stack.imageserving:
    state: restarted
    component: is

- name: A rootless stack of the account Ansible connects as
  imageserving.stack.imageserving:
    state: started
    scope: user

# A rolling restart: one host at a time, the first failure stops the play.
# (The same as the collection's playbook imageserving.stack.rolling_restart.)
- hosts: image_servers
  serial: 1
  max_fail_percentage: 0
  gather_facts: false
  tasks:
    - name: Restart and wait until the stack serves again
      imageserving.stack.imageserving:
        state: restarted
"""

RETURN = r"""
status:
  description:
    - The host's status document, as C(ImageServing status --json) prints it (read after
      the action; in check mode, before). It carries every component, also when the
      supervisor does not run.
  returned: when the host's ImageServing answered
  type: dict
  contains:
    scope:
      description: C(system) or C(user).
      type: str
      sample: system
    supervisor:
      description: The Server Supervisor's unit, with C(running).
      type: dict
    components:
      description:
        - One entry per component asked for, with C(name), C(unit), C(state),
          C(sub_state), C(pid), C(uptime_seconds), C(memory), C(processes) and
          C(restarts).
      type: list
      elements: dict
    message:
      description: Why the stack does not run, when the supervisor does not.
      type: str
      returned: when the supervisor does not run
cmd:
  description: The ImageServing command run (or that would run, in check mode).
  returned: when something was (or would be) done
  type: list
  elements: str
  sample: [/usr/bin/ImageServing, --system, --no-ask-password, restart, svg]
rc:
  description: The exit code of the ImageServing command that failed.
  returned: failure
  type: int
  sample: 5
stdout:
  description: What the ImageServing command printed (its one-line outcome).
  returned: when something was done
  type: str
  sample: "SVG Server (svg) stopped: imageserving-svg.service is inactive and no process of it is left; the supervisor leaves it stopped."
"""

import json

from ansible.module_utils.basic import AnsibleModule

# The tool's exit code when it is not installed (LSB: program not installed).
NOT_INSTALLED = 5
# `status` exits 0 (all run) or 3 (something does not): both carry the document.
STATUS_ANSWERED = (0, 3)
UP = ("active", "reloading")
DOWN = ("inactive", "failed")
# The names the tool accepts (its Component::valid_names), short and long.
COMPONENTS = ("ps", "is", "svg", "platform", "image")


def first_line(text):
    """The first non-empty line of the tool's message."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


class Tool(object):
    """The host's ImageServing, run with the module's scope and without password prompts."""

    def __init__(self, module, executable, scope):
        self.module = module
        self.base = [executable, "--" + scope, "--no-ask-password"]

    def command(self, *args):
        return self.base + [a for a in args if a]

    def run(self, argv):
        # LC_ALL=C: the tool's messages are English anyway; NO_COLOR: no escapes in them.
        return self.module.run_command(
            argv, environ_update={"LC_ALL": "C", "NO_COLOR": "1"}
        )

    def fail(self, rc, out, err, **extra):
        msg = first_line(err) or first_line(out) or (
            "ImageServing exited with status %d and said nothing" % rc
        )
        self.module.fail_json(msg=msg, rc=rc, stdout=out, stderr=err, **extra)

    def read_status(self, component):
        """(document or None, rc, stdout, stderr) of `status --json`."""
        rc, out, err = self.run(self.command("status", component, "--json"))
        doc = None
        if rc in STATUS_ANSWERED:
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("supervisor"), dict):
            doc = None
        return doc, rc, out, err

    def status(self, component):
        """The status document; the module fails with the tool's message without one."""
        doc, rc, out, err = self.read_status(component)
        if doc is not None:
            return doc
        if rc in STATUS_ANSWERED:
            self.module.fail_json(
                msg="ImageServing status --json did not answer with its document "
                "(first bytes: %r): is the installed version older than 0.1?" % out[:80],
                rc=rc,
                stdout=out,
                stderr=err,
            )
        self.fail(rc, out, err)


def component_states(doc):
    return [c.get("state", "") for c in doc.get("components") or []]


def supervisor_state(doc):
    return doc["supervisor"].get("state", "")


def plan(state, component, doc):
    """What to run to reach `state`, as ImageServing arguments; None when it is reached."""
    supervisor_up = bool(doc["supervisor"].get("running"))
    states = component_states(doc)
    if state == "restarted":
        return ["restart", component]
    if state == "started":
        if supervisor_up and states and all(s in UP for s in states):
            return None
        if component and supervisor_up:
            return ["restart", component]
        return ["start"]
    # stopped
    if component:
        return None if states and all(s in DOWN for s in states) else ["stop", component]
    if supervisor_state(doc) in DOWN and all(s in DOWN for s in states):
        return None
    return ["stop"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["started", "stopped", "restarted"]),
            component=dict(type="str", choices=list(COMPONENTS)),
            scope=dict(type="str", default="system", choices=["system", "user"]),
            executable=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    executable = p["executable"] or module.get_bin_path("ImageServing")
    if not executable:
        module.fail_json(
            msg="ImageServing is not installed on this host: install the imageserving package",
            rc=NOT_INSTALLED,
        )
    tool = Tool(module, executable, p["scope"])
    component = p["component"]
    before = tool.status(component)
    todo = plan(p["state"], component, before)
    if todo is None:
        module.exit_json(changed=False, status=before)
    argv = tool.command(*todo)
    if module.check_mode:
        module.exit_json(
            changed=True,
            cmd=argv,
            status=before,
            msg="would run: %s" % " ".join(argv),
        )
    rc, out, err = tool.run(argv)
    if rc != 0:
        after = tool.read_status(component)[0]
        tool.fail(rc, out, err, cmd=argv, status=after)
    after = tool.status(component)
    module.exit_json(changed=True, cmd=argv, status=after, stdout=out.strip(), msg=first_line(out))


if __name__ == "__main__":
    main()
