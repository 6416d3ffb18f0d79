#!/bin/sh
# Build the Tomcat listener that lets a connector on a socket systemd holds stop without
# resetting a client's connection (src/org/imageserving/tomcat/InheritedChannelHandover.java,
# whose comment says how) into target/assets/imageserving-tomcat.jar:
#   packaging/tomcat/build.sh
# Needs a JDK (javac, jar: Debian's default-jdk-headless, Fedora's java-devel) and Tomcat 10's
# libraries to compile against (Debian's libtomcat10-java, found in /usr/share/tomcat10;
# elsewhere TOMCAT_HOME=DIR, an install with lib/ and bin/). Java 11 bytecode: what Tomcat
# 10.1 runs on.
set -eu
cd "$(dirname "$0")/../.."
home=${TOMCAT_HOME:-/usr/share/tomcat10}
classpath=""
for jar in lib/catalina.jar lib/tomcat-coyote.jar lib/tomcat-util.jar lib/tomcat-api.jar lib/servlet-api.jar bin/tomcat-juli.jar; do
    [ -e "$home/$jar" ] || {
        echo "packaging/tomcat/build.sh: $home/$jar not found: install libtomcat10-java, or set TOMCAT_HOME to a Tomcat 10 install" >&2
        exit 1
    }
    classpath="$classpath${classpath:+:}$home/$jar"
done
command -v javac >/dev/null || {
    echo "packaging/tomcat/build.sh: javac not found: install a JDK (default-jdk-headless)" >&2
    exit 1
}
classes=target/tomcat-classes
rm -rf "$classes"
mkdir -p "$classes" target/assets
javac --release 11 -Xlint:all,-classfile -Werror -d "$classes" -cp "$classpath" \
    $(find packaging/tomcat/src -name '*.java')
# Entries with a fixed date (SOURCE_DATE_EPOCH if set), so that two builds are the same jar.
jar --create --date="$(date -u -d "@${SOURCE_DATE_EPOCH:-315619200}" +%Y-%m-%dT%H:%M:%SZ)" \
    --file target/assets/imageserving-tomcat.jar -C "$classes" .
