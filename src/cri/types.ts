/**
 * The runtime.v1 messages as proto-loader decodes them (keepCase, defaults, int64 as numbers,
 * enums as their names): only the fields berth reads. Sub-messages a client left out are null.
 */
export type StrMap = Record<string, string>;

export interface Int64Value {
  value: number;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export interface NamespaceOption {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  target_id: string;
  userns_options: { mode: NamespaceMode; uids: unknown[]; gids: unknown[] } | null;
}

export interface SecurityProfile {
  profile_type: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhost_ref: string;
}

export interface PortMapping {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  container_port: number;
  host_port: number;
  host_ip: string;
}

export interface LinuxContainerResources {
  cpu_period: number;
  cpu_quota: number;
  cpu_shares: number;
  memory_limit_in_bytes: number;
  oom_score_adj: number;
  cpuset_cpus: string;
  cpuset_mems: string;
  hugepage_limits: Array<{ page_size: string; limit: number }>;
  unified: StrMap;
  memory_swap_limit_in_bytes: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata | null;
  hostname: string;
  log_directory: string;
  dns_config: { servers: string[]; searches: string[]; options: string[] } | null;
  port_mappings: PortMapping[];
  labels: StrMap;
  annotations: StrMap;
  linux: {
    cgroup_parent: string;
    security_context: {
      namespace_options: NamespaceOption | null;
      run_as_user: Int64Value | null;
      run_as_group: Int64Value | null;
      readonly_rootfs: boolean;
      supplemental_groups: number[];
      privileged: boolean;
      seccomp: SecurityProfile | null;
    } | null;
    sysctls: StrMap;
  } | null;
}

export interface ImageSpec {
  image: string;
  annotations: StrMap;
  user_specified_image: string;
  runtime_handler: string;
}

export interface Mount {
  container_path: string;
  host_path: string;
  readonly: boolean;
  selinux_relabel: boolean;
  propagation: 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
  recursive_read_only: boolean;
  image: ImageSpec | null;
  uidMappings: unknown[];
  gidMappings: unknown[];
}

export interface LinuxContainerSecurityContext {
  capabilities: { add_capabilities: string[]; drop_capabilities: string[]; add_ambient_capabilities: string[] } | null;
  privileged: boolean;
  namespace_options: NamespaceOption | null;
  run_as_user: Int64Value | null;
  run_as_group: Int64Value | null;
  run_as_username: string;
  readonly_rootfs: boolean;
  supplemental_groups: number[];
  no_new_privs: boolean;
  masked_paths: string[];
  readonly_paths: string[];
  seccomp: SecurityProfile | null;
  seccomp_profile_path: string;
}

export interface ContainerConfig {
  metadata: { name: string; attempt: number } | null;
  image: ImageSpec | null;
  command: string[];
  args: string[];
  working_dir: string;
  envs: Array<{ key: string; value: string }>;
  mounts: Mount[];
  devices: Array<{ container_path: string; host_path: string; permissions: string }>;
  labels: StrMap;
  annotations: StrMap;
  log_path: string;
  stdin: boolean;
  stdin_once: boolean;
  tty: boolean;
  linux: { resources: LinuxContainerResources | null; security_context: LinuxContainerSecurityContext | null } | null;
  CDI_devices: Array<{ name: string }>;
  stop_signal: string;
}

export interface AuthConfig {
  username: string;
  password: string;
  auth: string;
  server_address: string;
  identity_token: string;
  registry_token: string;
}
