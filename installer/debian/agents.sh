# Shared by preinst, prerm and postinst (deb.py puts it at the top of each): which agents run
# from this package, stopping them before its files change, and starting them again after.
#
# An agent runs either as an instance of the template unit tentacle@.service, or as a unit that
# `tentacle service --install` wrote to /etc/systemd/system with ExecStart pointing here. The
# units that were running are listed in $AGENTS_TO_RESTART (under /run, so a reboot in
# between, which starts them anyway, forgets the list). Nothing here touches an instance's
# configuration, certificates, Work or Logs folders. Without systemd (a container, another
# init) there is nothing to stop or start and these do nothing.

AGENTS_TO_RESTART=/run/tentacle-manager/agents-to-restart
AGENT_EXECUTABLE=/opt/tentacle-manager/tentacle

systemd_running() {
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

invoke() {
    # deb-systemd-invoke honours policy-rc.d (chroots, image builds); plain systemctl otherwise.
    if command -v deb-systemd-invoke >/dev/null 2>&1; then
        deb-systemd-invoke "$@"
    else
        systemctl "$@"
    fi
}

running_agents() {
    systemctl list-units --type=service --state=running --no-legend --plain 'tentacle@*.service' |
        awk '{ print $1 }'
    for unit_file in /etc/systemd/system/*.service; do
        [ -f "$unit_file" ] || continue
        grep -q "^ExecStart=$AGENT_EXECUTABLE " "$unit_file" || continue
        unit=${unit_file##*/}
        if [ "$(systemctl is-active "$unit" 2>/dev/null || true)" = active ]; then
            echo "$unit"
        fi
    done
}

stop_agents() {
    systemd_running || return 0
    mkdir -p "${AGENTS_TO_RESTART%/*}"
    for unit in $(running_agents); do
        echo "$unit" >>"$AGENTS_TO_RESTART"
        invoke stop "$unit" || echo "tentacle-manager: could not stop $unit" >&2
    done
}

start_agents() {
    systemd_running || return 0
    systemctl daemon-reload || true
    [ -f "$AGENTS_TO_RESTART" ] || return 0
    for unit in $(sort -u "$AGENTS_TO_RESTART"); do
        invoke start "$unit" || echo "tentacle-manager: could not start $unit again" >&2
    done
    rm -f "$AGENTS_TO_RESTART"
}
