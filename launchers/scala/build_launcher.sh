#!/bin/sh
# Compile the Toree launcher (src/gp/launcher/*.java) into a jar: build_launcher.sh OUT.jar
# Needs a JDK 11+ (javac, jar). Called by the installers for --language Scala and by the Scala
# image's build; nothing else is needed at build time (the launcher uses the JDK only and
# finds Toree on the class path at run time).
set -eu
out=${1:?usage: build_launcher.sh OUT.jar}
here=$(cd "$(dirname "$0")" && pwd)
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
javac --release 11 -nowarn -XDignore.symbol.file -d "$classes" "$here"/src/gp/launcher/*.java
jar --create --file "$out" -C "$classes" .
