#!/usr/bin/env python3
"""Where a transfer's CPU goes, by category, from `perf record -a -g -e cpu-clock -F HZ` taken
during one iperf3 run (bench/overlay.sh's paths; see bench/README.md, "Overlay networks").

  python3 bench/overlay-profile.py A.data A.json [B.data B.json ...]     (HZ=2000 by default)

Each sample of an iperf3 or ksoftirqd thread goes to the category of the innermost function on its
stack that has one (so a memcpy under vxlan_xmit is vxlan's); A.json is that run's `iperf3 -J`
output (the bytes moved). Prints ms of CPU per GB, then the same per sample of the copies to and
from user space: the copies are the same work per byte on every path, so dividing by them cancels
most of what a loaded machine does to all figures alike (cache misses, steal time).
"""
import subprocess, sys, json, collections, re
CATS = [
 ('copy', r'^_copy_(to|from)_iter$|^copy_page|^_copy_from_user$|^_copy_to_user$'),
 ('mem', r'^(kmem_cache|kmalloc|__kmalloc|kfree|__alloc_pages|__free_pages|__free_frozen|get_page_from_freelist|skb_release|__slab|___slab|skb_free_head|page_frag|__memcg|mem_cgroup|allocate_slab|__alloc_skb|alloc_skb|skb_page_frag|sk_page_frag|__folio_put|free_unref|__rmqueue|rmqueue|kfree_skb|__kfree_skb|consume_skb|napi_consume|skb_defer|sk_skb_reason_drop|__napi_kfree|__put_page|put_page|__get_pfnblock)'),
 ('tc', r'^(tc_run|tcf_|__tcf_|u32_classify|tcf_mirred|sch_handle|mirred)'),
 ('vxlan_tx', r'^(vxlan_xmit|vxlan_xmit_one|vxlan_build_skb|iptunnel_xmit|udp_tunnel_xmit_skb|vxlan_find_mac|udp_flow_src_port|__ip_select_ident|vxlan_get_route|udp_set_csum|iptunnel_handle_offloads|ip_route_output_tunnel|udp_tunnel_dst_lookup|dst_cache_get)'),
 ('vxlan_rx', r'^(vxlan_rcv|vxlan_vs_find|gro_cell|gro_cells|__udp4_lib_rcv|udp_rcv|udp_queue_rcv|udp_unicast_rcv|udp_v4_early_demux|__udp4_lib_lookup|udp4_lib_lookup|iptunnel_pull|__iptunnel_pull|udp_tunnel|vxlan_ecn|vxlan_set_mac|vxlan_remcsum|skb_vlan_untag|napi_gro_receive|dev_gro_receive|gro_receive|inet_gro|tcp4_gro|tcp_gro|udp4_gro|udp_gro)'),
 ('netfilter', r'^(nf_|__nf_|nft_|ipv4_conntrack|ipv4_confirm|hash_conntrack|ipv4_helper|nf_conntrack|ipt_|nf_nat|iptable_|ipv4_get_l4proto|get_l4proto|resolve_normal_ct|tcp_in_window|nf_ct|nf_confirm|nf_hook_slow|br_nf_|ip_sabotage|br_netfilter)'),
 ('bridge', r'^(br_|__br_|fdb_|nbp_)'),
 ('route', r'^(fib_|ip_route_|ipv4_dst_check|ipv4_mtu|dst_|ip_rt_|__fib|rt_dst|ip_mc_)'),
 ('tcp', r'^(tcp_|__tcp_|inet_|__inet_|sk_|sock_|lock_sock|release_sock|__release_sock|skb_copy_datagram|__skb_datagram|skb_entail|bpf_skops|inet6_recvmsg|tcp4_|tcp_v4)'),
 ('ip', r'^(ip_|__ip_|ip_local|ip_rcv|ip_finish|ip_output|ip_send|raw_|neigh_|__neigh|eth_header|ip_protocol)'),
 ('dev', r'^(__dev_queue_xmit|dev_queue_xmit|dev_hard_start|veth_|__netif_receive|netif_receive|process_backlog|net_rx_action|__napi_poll|netif_rx|__netif_rx|enqueue_to_backlog|eth_type_trans|validate_xmit|skb_network_protocol|netif_skb_features|dev_forward|__dev_forward|skb_scrub|do_softirq|handle_softirqs|__local_bh_enable|rps_|napi_|____napi|skb_csum_hwoffload|dev_get_by_index)'),
 ('syscall', r'^(vfs_|ksys_|__x64_sys|do_syscall|entry_SYSCALL|fdget|__fdget|do_select|do_pselect|core_sys_select|sock_poll|tcp_poll|__check_object_size|__virt_addr_valid|syscall_|rw_verify|security_|apparmor|__fsnotify|fsnotify)'),
]
CATS = [(n, re.compile(p)) for n, p in CATS]
def cat_of(stack):
    for s in stack:
        for n, p in CATS:
            if p.search(s): return n
    return 'user' if stack and stack[0].startswith('[') else 'other'
def load(data, js):
    gb = json.load(open(js))['end']['sum_received']['bytes'] / 1e9
    out = subprocess.run(['perf', 'script', '-i', data, '-F', 'comm,ip,sym'], capture_output=True, text=True).stdout
    c = collections.Counter(); cur=None; st=[]; other=collections.Counter()
    def flush():
        if cur and (cur.startswith('iperf3') or cur.startswith('ksoftirqd')) and st:
            k = cat_of(st); c[k] += 1
            if k == 'other': other[st[0]] += 1
    for line in out.splitlines():
        if not line.strip(): flush(); cur=None; st=[]; continue
        if not line.startswith((' ', '\t')): flush(); cur=line.split()[0]; st=[]; continue
        p=line.split()
        if len(p)>=2: st.append(p[1].split('+')[0])
    flush()
    return gb, c, other
hz=float(__import__('os').environ.get('HZ','2000'))
res=[load(sys.argv[i], sys.argv[i+1]) for i in range(1,len(sys.argv),2)]
names=[n for n,_ in CATS]+['user','other']
print('%-10s'%'ms/GB' + ''.join('%9s'%sys.argv[i].split('.')[0] for i in range(1,len(sys.argv),2)))
for n in names+['TOTAL']:
    row=[]
    for gb,c,_ in res:
        v = sum(c.values()) if n=='TOTAL' else c[n]
        row.append(v/hz/gb*1000)
    print('%-10s'%n + ''.join('%9.1f'%x for x in row))

cp = [c['copy'] or 1 for _, c, _ in res]
print('%-10s' % 'per copy' + ''.join('%9s' % sys.argv[i].split('/')[-1].split('.')[0] for i in range(1, len(sys.argv), 2)))
for n in names + ['TOTAL']:
    print('%-10s' % n + ''.join('%9.3f' % ((sum(c.values()) if n == 'TOTAL' else c[n]) / k) for (_, c, _), k in zip(res, cp)))
