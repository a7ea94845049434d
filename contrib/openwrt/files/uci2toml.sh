#!/bin/sh
# uci2toml.sh: turns dynhostd's UCI config (/etc/config/dynhostd) into the TOML file the daemon
# reads, so OpenWrt users configure it the OpenWrt way (uci, LuCI) while dynhostd keeps one config
# format. The init script runs it at every start and reload and writes the result to
# /var/etc/dynhostd.toml (RAM, mode 0600: it holds the password).
#
# Usage: uci2toml.sh [PACKAGE]    (default package: dynhostd)
#   stdout: the TOML, only when every value translated; nothing otherwise
#   stderr: one line per bad value, naming the UCI option (dynhostd.home.enabled: …)
#   exit:   0 translated, 1 a bad value, 2 no UCI functions
#
# The UCI reading comes from OpenWrt's /lib/functions.sh (config_load, config_get,
# config_foreach, config_list_foreach). Off OpenWrt, DYNHOSTD_FUNCTIONS_SH names a replacement
# (the tests use contrib/openwrt/test/uci-stub.sh).
#
# A host's `interface`, `interface6` and `ipv6_prefix_from` name a UCI network interface ('wan',
# 'wan6', 'lan'), as everywhere else on OpenWrt; dynhostd follows Linux devices, so each is
# resolved here, in this order:
#   1. network_get_device from /lib/functions/network.sh: the interface's layer-3 device as netifd
#      reports it now (br-lan, pppoe-wan), when the interface is up;
#   2. /etc/config/network (`uci -q get`): pppoe/pppoa interfaces get netifd's pppoe-NAME /
#      pppoa-NAME, others their `device` option, an @alias ('wan6' on '@wan') its target's;
#   3. otherwise the value is taken as a device name as it is ('eth1').
# Off OpenWrt, DYNHOSTD_NETWORK_SH and DYNHOSTD_UCI name replacements for (1) and the uci tool.
#
# `interface` (in 'main' and in a host) and a host's `interface6` may also be UCI lists
# (`list interface 'wan'`, `list interface 'wwan'`, highest priority first): a failover list,
# each item resolved the same way. The 'main' section's `option interface` stays a device name.
#
# What is checked here is only what TOML cannot carry or UCI spells differently (booleans,
# options given where lists belong, line breaks). Everything else (hostnames, prefixes,
# durations, families) is checked by `dynhostd check` on the result, which names the key and
# line; the `# UCI dynhostd.<section>` comment above each [[host]] ties it back to the section.

# No `set -u`: OpenWrt's /lib/functions.sh reads variables that are unset by design
# (IPKG_INSTROOT when it is sourced, NO_EXPORT and its CONFIG_* counters in config_load), and
# would end this script on the router (contrib/openwrt/test-procd found it; a stand-in cannot).

functions_sh=${DYNHOSTD_FUNCTIONS_SH:-/lib/functions.sh}
if [ ! -r "$functions_sh" ]; then
    echo "uci2toml: $functions_sh not found (not OpenWrt? set DYNHOSTD_FUNCTIONS_SH)" >&2
    exit 2
fi
# shellcheck source=/dev/null
. "$functions_sh"

package=${1:-dynhostd}
nl='
'
out=''
failed=0
REPLY=''

fail() {
    printf 'uci2toml: %s\n' "$*" >&2
    failed=1
}

emit() {
    out="$out$*$nl"
}

# REPLY := $2 as a TOML basic string. Backslashes and double quotes are escaped; control
# characters (a line break pasted into a password) are refused rather than guessed at, as
# dynhostd would refuse them in a password anyway.
toml_str() {
    case $2 in
        *[[:cntrl:]]*)
            fail "$1: holds a control character (a line break or tab?): remove it"
            return 1
            ;;
    esac
    REPLY="\"$(printf '%s' "$2" | sed -e 's/[\\"]/\\&/g')\""
}

# REPLY := $2 as a TOML boolean, spelled the ways OpenWrt's config_get_bool takes. Unlike
# config_get_bool, an unknown spelling is an error, not silently the default.
toml_bool() {
    case $2 in
        1 | yes | on | true | enabled) REPLY=true ;;
        0 | no | off | false | disabled) REPLY=false ;;
        *)
            fail "$1: '$2' is not a boolean: use '1' or '0'"
            return 1
            ;;
    esac
}

# `key = "value"` when the option is set (and non-empty).
str_option() { # section option [toml-key]
    value=''
    config_get value "$1" "$2"
    [ -n "$value" ] || return 0
    toml_str "$package.$1.$2" "$value" || return 0
    emit "${3:-$2} = $REPLY"
}

list_items=''
add_item() { # value where
    [ -n "$1" ] || return 0
    toml_str "$2" "$1" || return 0
    list_items="${list_items:+$list_items, }$REPLY"
}

# `key = ["a", "b"]` from a UCI list. Given as `option` instead of `list`, config_list_foreach
# sees nothing; say so rather than drop the value.
list_option() { # section option
    list_items=''
    config_list_foreach "$1" "$2" add_item "$package.$1.$2"
    if [ -z "$list_items" ]; then
        value=''
        config_get value "$1" "$2"
        if [ -n "$value" ]; then
            fail "$package.$1.$2: write it as 'list $2 ...' (one line per prefix), not 'option $2'"
        fi
        return 0
    fi
    emit "$2 = [$list_items]"
}

mains=0
state_dir=''
main_section() {
    mains=$((mains + 1))
    if [ "$mains" -gt 1 ]; then
        fail "$package.$1: a second 'config dynhostd' section: keep only one"
        return 0
    fi
    # Validated for the init script's sake; the daemon has no use for it.
    value=''
    config_get value "$1" enabled
    [ -z "$value" ] || toml_bool "$package.$1.enabled" "$value" || true
    emit "[wan]"
    interface_option "$1" interface str_option
    str_option "$1" failback
    bool_option "$1" failover_requires_route
    str_option "$1" debounce
    list_option "$1" accept
    list_option "$1" ignore
    config_get state_dir "$1" state_dir
}

network_sh=${DYNHOSTD_NETWORK_SH:-/lib/functions/network.sh}
uci_tool=${DYNHOSTD_UCI:-uci}

# REPLY := the Linux device of the UCI network interface $1 (see the top of this file); $2 counts
# @alias hops, so a looping alias ends.
device_of() {
    REPLY=''
    hops=${2:-0}
    if [ -r "$network_sh" ]; then
        # A subshell: network.sh brings its own helpers and must not touch ours.
        REPLY=$(
            # shellcheck source=/dev/null
            . "$network_sh" >/dev/null 2>&1 || exit 0
            dev=''
            network_get_device dev "$1" 2>/dev/null || exit 0
            printf '%s' "$dev"
        )
    fi
    [ -z "$REPLY" ] || return 0
    if command -v "$uci_tool" >/dev/null 2>&1; then
        proto=$("$uci_tool" -q get "network.$1.proto" 2>/dev/null) || proto=''
        case $proto in
            pppoe | pppoa)
                REPLY="$proto-$1"
                return 0
                ;;
        esac
        dev=$("$uci_tool" -q get "network.$1.device" 2>/dev/null) || dev=''
        case $dev in
            '') ;;
            @*)
                if [ "$hops" -lt 4 ]; then
                    device_of "${dev#@}" $((hops + 1))
                    return 0
                fi
                ;;
            *)
                REPLY=$dev
                return 0
                ;;
        esac
    fi
    REPLY=$1
}

# `key = "device"` for an option naming a UCI network interface (or a device).
device_option() { # section option
    value=''
    config_get value "$1" "$2"
    [ -n "$value" ] || return 0
    device_of "$value"
    toml_str "$package.$1.$2" "$REPLY" || return 0
    emit "$2 = $REPLY"
}

# `key = true|false` when the boolean option is set.
bool_option() { # section option
    value=''
    config_get value "$1" "$2"
    [ -n "$value" ] || return 0
    toml_bool "$package.$1.$2" "$value" || return 0
    emit "$2 = $REPLY"
}

add_device() { # value where
    [ -n "$1" ] || return 0
    device_of "$1"
    add_item "$REPLY" "$2"
}

# `interface`/`interface6`: a UCI list is a failover list (`key = ["dev1", "dev2"]`, each item
# a UCI network interface resolved to its device); an option is one interface, written by
# $3 (device_option, or str_option for the main section's device name).
interface_option() { # section option single-writer
    list_items=''
    config_list_foreach "$1" "$2" add_device "$package.$1.$2"
    if [ -n "$list_items" ]; then
        emit "$2 = [$list_items]"
        return 0
    fi
    "$3" "$1" "$2"
}

hosts=0
host_section() {
    hosts=$((hosts + 1))
    emit ""
    emit "# UCI $package.$1"
    emit "[[host]]"
    for opt in hostname login password password_file family provider server ca_file; do
        str_option "$1" "$opt"
    done
    for opt in interface interface6; do
        interface_option "$1" "$opt" device_option
    done
    device_option "$1" ipv6_prefix_from
    str_option "$1" failback
    for opt in ipv6_suffix ipv6_eui64 ipv6_neighbour; do
        str_option "$1" "$opt"
    done
    value=''
    config_get value "$1" enabled
    if [ -n "$value" ] && toml_bool "$package.$1.enabled" "$value"; then
        emit "enabled = $REPLY"
    fi
}

# `config notify` (any number) and `config health` (at most one): notifications and health
# pings (README, "[[notify]] and [health]"). Their URL holds a token, as a password does: give
# it as `option url` here (this file is root's) or `option url_file`. A section with
# `option enabled '0'` is left out.
section_enabled() { # section
    value=''
    config_get value "$1" enabled
    [ -n "$value" ] || return 0
    toml_bool "$package.$1.enabled" "$value" || return 1
    [ "$REPLY" = true ]
}

notify_section() {
    section_enabled "$1" || return 0
    emit ""
    emit "# UCI $package.$1"
    emit "[[notify]]"
    str_option "$1" url
    str_option "$1" url_file
    list_option "$1" events
}

healths=0
health_section() {
    section_enabled "$1" || return 0
    healths=$((healths + 1))
    if [ "$healths" -gt 1 ]; then
        fail "$package.$1: a second 'config health' section: keep only one"
        return 0
    fi
    emit ""
    emit "# UCI $package.$1"
    emit "[health]"
    for opt in url url_file interval style; do
        str_option "$1" "$opt"
    done
}

if ! config_load "$package"; then
    echo "uci2toml: cannot load the UCI config '$package'" >&2
    exit 1
fi

emit "# Generated from /etc/config/$package by uci2toml.sh at each start and reload of"
emit "# /etc/init.d/dynhostd: edit the UCI config (uci set/commit, LuCI), not this file."
config_foreach main_section dynhostd
emit ""
emit "[state]"
if [ -n "$state_dir" ]; then
    toml_str "$package.main.state_dir" "$state_dir" && emit "dir = $REPLY"
fi
# The agent's control socket (dynhostd status, retry, update): OpenWrt has /var/run, in RAM,
# and no /run. The init script creates the directory.
emit "control = \"/var/run/dynhostd/control\""
config_foreach host_section host
if [ "$hosts" -eq 0 ]; then
    fail "$package: no 'config host' section: add one (hostname, login, password)"
fi
config_foreach notify_section notify
config_foreach health_section health

[ "$failed" -eq 0 ] || exit 1
printf '%s' "$out"
