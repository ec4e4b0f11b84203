#!/bin/sh
# Starts a private systemd user manager for the lifecycle tests (tests/lifecycle/user_manager.rs).
#
# In: run as root through `unshare --mount --propagation private`, so the mounts below are seen
# by this manager and its units only; `$1` names the cgroup of its own to create;
# `XDG_RUNTIME_DIR` (mode 0700) and `XDG_CONFIG_HOME` are temporary directories. Further
# arguments make the machine poorer, to test how deploy copes: `no-user-namespaces` (run
# through `unshare --user` as well) forbids creating user namespaces, `no-inaccessible-nodes`
# leaves out the nodes sandboxed units need. Out: this process becomes `systemd --user`,
# listening on `$XDG_RUNTIME_DIR/systemd/private`, reading units from
# `$XDG_CONFIG_HOME/systemd/user`, with the units' output on its stderr.
set -eu

cgroup=$1
shift
inaccessible_nodes=yes
for option in "$@"; do
    case $option in
    no-user-namespaces)
        # Only ever in a user namespace of its own: the limit then holds for it alone.
        if [ "$(readlink /proc/self/ns/user)" = "$(readlink /proc/1/ns/user)" ]; then
            echo "no-user-namespaces needs \`unshare --user\`" >&2
            exit 2
        fi
        echo 0 >/proc/sys/user/max_user_namespaces
        ;;
    no-inaccessible-nodes) inaccessible_nodes=no ;;
    *)
        echo "unknown option $option" >&2
        exit 2
        ;;
    esac
done

# Units with ProtectKernelTunables= (which implies MountAPIVFS=) get an empty tmpfs on /run
# unless /run is a mount point already, as it is where systemd booted the machine; here it
# may be a plain directory, and that tmpfs would hide the manager's notification socket in
# its runtime directory below /run. A bind mount of /run onto itself makes it a mount point.
mount --rbind /run /run

# systemd refuses to run as a user manager unless /run/systemd/system exists (its
# sd_booted() test), which PID 1 makes when it is systemd. An empty tmpfs over /run/systemd,
# in this mount namespace only, holds it: nothing changes for the rest of the machine.
# (Only the empty mount point /run/systemd may be made on the machine, where it is missing;
# sd_booted() does not look at it.)
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
# A manager running as root masks paths (ProtectKernelTunables=, ProtectHome=, …) by
# mounting the nodes under /run/systemd/inaccessible, which PID 1 makes; without them every
# sandboxed unit exits with 226/NAMESPACE. The manager makes the same nodes in its runtime
# directory when it starts: point there.
if [ "$inaccessible_nodes" = yes ]; then
    ln -s "$XDG_RUNTIME_DIR/systemd/inaccessible" /run/systemd/inaccessible
fi

# A cgroup of its own in every hierarchy that tracks processes: a manager in the root cgroup
# would move every process of the machine there into `init.scope`, and two managers would
# share their units' cgroups.
for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    if [ -f "$hierarchy/cgroup.procs" ]; then
        mkdir "$hierarchy/$cgroup"
        echo $$ >"$hierarchy/$cgroup/cgroup.procs"
    fi
done

for systemd in /usr/lib/systemd/systemd /lib/systemd/systemd; do
    if [ -x "$systemd" ]; then
        # No journald serves this manager: the units' output goes to its stderr instead.
        exec "$systemd" --user --log-target=console \
            --default-standard-output=inherit --default-standard-error=inherit
    fi
done
echo "no systemd binary in /usr/lib/systemd or /lib/systemd" >&2
exit 127
