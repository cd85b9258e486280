#!/usr/bin/env bash
# Installs the system packages the application (runtime) or the test suite (test) needs, when they are missing.
# Uses apt-get as root, or through sudo when available; otherwise says what to install and goes on.
set -u
mode="${1:-runtime}"
need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libmagic.so.1 || need+=(libmagic1)
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr tesseract-ocr-eng)
if [ "$mode" = "test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${need[*]}"
if [ "$(id -u)" = "0" ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO="none"; fi
if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Cannot install them here (no apt-get or no root). Please install: ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
  echo "apt-get could not install: ${need[*]}. Features that need them will say so." >&2
  exit 0
}
