# Shared by the bench scripts (sourced).
# Unmounts whatever is left mounted under the work dir $1 and stops the containerd instances a
# dockerd started for it, so that a run leaves nothing behind and the next one starts clean.
release_work() {
  sleep 1
  grep -o " $1[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  pkill -f "containerd.*$1" 2>/dev/null
  return 0
}
