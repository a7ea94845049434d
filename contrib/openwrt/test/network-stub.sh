# shellcheck shell=sh
# network-stub.sh: a stand-in for OpenWrt's /lib/functions/network.sh as uci2toml.sh uses it
# (network_get_device VAR IFACE: the interface's layer-3 device while it is up). Here 'lan' is
# up on br-lan and every other interface is down. Sourced, never run.

network_get_device() {
    case $2 in
        lan)
            eval "$1=br-lan"
            ;;
        *)
            return 1
            ;;
    esac
}
