#!/bin/sh
# uci-network-stub.sh: a stand-in for `uci -q get network.NAME.OPTION` over a small
# /etc/config/network: 'wan2' is a PPPoE interface (netifd names it pppoe-wan2), 'wan6' a DHCPv6
# alias of @wan2 (no device of its own), 'lte' a plain device.
[ "$1" = -q ] && [ "$2" = get ] || exit 1
case $3 in
    network.wan2.proto) echo pppoe ;;
    network.wan2.device) echo eth1 ;;
    network.wan6.proto) echo dhcpv6 ;;
    network.wan6.device) echo @wan2 ;;
    network.lte.proto) echo dhcp ;;
    network.lte.device) echo wwan0 ;;
    *) exit 1 ;;
esac
