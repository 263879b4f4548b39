# The host commands fnbox itself runs, as "command package": quickstart.sh and install.sh
# source this file and install what is missing, so the README's first command works on a
# fresh Debian machine. tests/fresh_machine.rs fails when the code runs a command this table
# does not name (nftables was missing once: every default deploy, which has egress, failed).
fnbox_host_commands=(
  # Disk layers: each sandbox's writable layer is an ext4 image on a loop device.
  "mkfs.ext4 e2fsprogs"
  # Egress (--network egress, the default of a deployed function): the sandbox's veth pair
  # and its nftables rules.
  "ip iproute2"
  "nft nftables"
)

# Installs the package of every command above that is missing (Debian's apt-get), or says
# which packages to install when there is no apt-get.
fnbox_install_host_commands() {
  local n cmd pkg missing=()
  for n in "${fnbox_host_commands[@]}"; do
    cmd=${n% *} pkg=${n#* }
    command -v "$cmd" >/dev/null || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "fnbox needs these packages (install them with your package manager): ${missing[*]}" >&2
    return 1
  fi
  echo "installing what fnbox runs on the host: ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
