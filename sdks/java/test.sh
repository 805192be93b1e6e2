#!/usr/bin/env bash
# Builds the Java SDK with plain javac (no Maven/Gradle: no Maven Central here) and runs its JUnit 5
# tests against a real Aforo (the tests start `python -m aforo.devserver.testplatform` once).
# Needs: a JDK 17+, Debian's junit5 (the console launcher), libjakarta-servlet-api-java (compile-only
# API of the filter), libtomcat10-embed-java + libjakarta-annotation-api-java (a real servlet container
# for the filter's tests).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
JARS=/usr/share/java

need=()
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
[ -f "$JARS/junit-platform-console-standalone.jar" ] || need+=(junit5)
[ -f "$JARS/jakarta-servlet-api.jar" ] || need+=(libjakarta-servlet-api-java)
[ -f "$JARS/tomcat10-embed-core.jar" ] || need+=(libtomcat10-embed-java)
[ -f "$JARS/jakarta-annotation-api.jar" ] || need+=(libjakarta-annotation-api-java)  # Tomcat's @PostConstruct
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

BUILD="$HERE/build"
rm -rf "$BUILD" && mkdir -p "$BUILD/main" "$BUILD/test"
javac --release 17 -Xlint:all -Werror -d "$BUILD/main" -cp "$JARS/jakarta-servlet-api.jar" \
  $(find "$HERE/src/main/java" -name '*.java')
(cd "$BUILD/main" && jar --create --file "$BUILD/aforo-sdk.jar" .)
TEST_CP="$BUILD/main:$JARS/tomcat10-embed-core.jar:$JARS/junit-jupiter-api.jar:$JARS/apiguardian-api.jar:$JARS/opentest4j.jar:$JARS/junit-platform-commons.jar"
javac --release 17 -d "$BUILD/test" -cp "$TEST_CP" $(find "$HERE/src/test/java" -name '*.java')

cd "$HERE"
# ./test.sh                      every test;  ./test.sh -c io.aforo.sdk.SpoolRestartTest   one class
SELECT=(--scan-class-path "$BUILD/test" --include-classname '.*Test')
[ $# -gt 0 ] && SELECT=("$@")
java -Daforo.root="$ROOT" -Daforo.python="$PY" -Djava.util.logging.config.file="$HERE/src/test/resources/logging.properties" \
  -Daforo.classpath="$BUILD/main:$BUILD/test" \
  -jar "$JARS/junit-platform-console-standalone.jar" \
  --class-path "$BUILD/main:$BUILD/test:$JARS/tomcat10-embed-core.jar:$JARS/jakarta-annotation-api.jar" \
  "${SELECT[@]}" --disable-banner --details=tree --fail-if-no-tests
