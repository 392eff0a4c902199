#!/usr/bin/env bash
# Issue 18, step 2 of the macvlan data path (not berth code; needs root, busybox, nft):
# kernel-level feasibility in plain namespaces: two hosts on an underlay; per host a VXLAN (proxy, nolearning),
# a host-side macvlan "gw" holding the gateway 10.98.0.1/24 (same on both hosts), containers on
# macvlans; remote entries as berth writes them (fdb on vx + neigh on vx, answered by the VXLAN's proxy).
set -u
N=192.168.248
down() { for n in ku k1 k2 kc1 kc2 kc3 kx; do ip netns del $n 2>/dev/null; done; }
down; trap down EXIT
ip netns add ku; ip -n ku link add br0 type bridge; ip -n ku link set br0 up
ip -n ku addr add $N.254/24 dev br0
for i in 1 2; do
  ip netns add k$i
  ip link add kv$i type veth peer name eth0 netns k$i
  ip link set kv$i netns ku; ip -n ku link set kv$i master br0 up
  ip -n k$i addr add $N.$i/24 dev eth0; ip -n k$i link set eth0 up; ip -n k$i link set lo up
  ip -n k$i route add default via $N.254
  ip netns exec k$i sysctl -qw net.ipv4.ip_forward=1
  ip -n k$i link add vx0 mtu 1450 type vxlan id 77 local $N.$i dstport 4789 nolearning proxy
  ip -n k$i link set vx0 up
  ip -n k$i link add gw0 link vx0 type macvlan mode bridge
  ip -n k$i addr add 10.98.0.1/24 dev gw0; ip -n k$i link set gw0 up
  ip netns exec k$i nft -f - <<NFT
table ip t {
  chain post { type nat hook postrouting priority srcnat; ip saddr 10.98.0.0/24 oifname != "gw0" masquerade; }
  chain pre { type nat hook prerouting priority dstnat; iifname "eth0" tcp dport 8080 dnat to 10.98.0.$((i+1)):80; }
}
NFT
done
# containers: c1 on host1 (10.98.0.2), c3 on host1 (10.98.0.4), c2 on host2 (10.98.0.3)
mk() { # ns host ip mac
  ip netns add $1
  ip -n $2 link add mvtmp link vx0 address $4 type macvlan mode bridge
  ip -n $2 link set mvtmp netns $1
  ip -n $1 link set mvtmp name eth0; ip -n $1 addr add $3/24 dev eth0; ip -n $1 link set eth0 up; ip -n $1 link set lo up
  ip -n $1 route add default via 10.98.0.1
}
mk kc1 k1 10.98.0.2 02:42:0a:62:00:02
mk kc2 k2 10.98.0.3 02:42:0a:62:00:03
mk kc3 k1 10.98.0.4 02:42:0a:62:00:04
for m in "k1 10.98.0.3 02:42:0a:62:00:03 2" "k2 10.98.0.2 02:42:0a:62:00:02 1" "k2 10.98.0.4 02:42:0a:62:00:04 1"; do
  set -- $m
  bridge -n $1 fdb replace $3 dev vx0 dst $N.$4 self permanent
  ip -n $1 neigh replace $2 lladdr $3 dev vx0 nud permanent
done
# the outside: a namespace on the underlay
ip netns add kx; ip link add kxv type veth peer name eth0 netns kx; ip link set kxv netns ku; ip -n ku link set kxv master br0 up
ip -n kx addr add $N.100/24 dev eth0; ip -n kx link set eth0 up
t() { if ip netns exec $1 busybox ping -c1 -W2 $2 >/dev/null 2>&1; then echo "ok   $3"; else echo "FAIL $3"; fi; }
t kc1 10.98.0.3 "c1(h1) -> c2(h2) across hosts, ARP through the VXLAN proxy"
t kc2 10.98.0.2 "c2(h2) -> c1(h1)"
t kc1 10.98.0.4 "c1 -> c3 same host (macvlan bridge mode)"
t kc1 10.98.0.1 "c1 -> gateway (host macvlan)"
t kc2 10.98.0.1 "c2 -> gateway on its own host"
t k1 10.98.0.2 "host1 -> c1"
t kc1 $N.100 "c1 -> outside via gateway + masquerade"
t kc2 $N.100 "c2 -> outside via gateway + masquerade"
ip -n kc1 neigh show dev eth0
ip -n kc2 neigh show dev eth0
# -p: outside -> host2:8080 DNAT to c2:80
ip netns exec kc2 busybox nc -l -p 80 -e echo hello >/dev/null 2>&1 & L=$!
sleep 0.5
r=$(ip netns exec kx busybox nc -w2 $N.2 8080 </dev/null 2>/dev/null)
[ "$r" = hello ] && echo "ok   -p: outside -> host2:8080 -> c2:80" || echo "FAIL -p ($r)"
kill $L 2>/dev/null
# the gateway's ARP must not cross: arp for 10.98.0.1 from c2 answered by host2's gw0
ip -n kc2 neigh show 10.98.0.1; ip -n k2 link show gw0 | grep ether
