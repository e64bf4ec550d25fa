#!/bin/bash
# The Spark-on-Kubernetes container entrypoint of the local Spark base (images/base/spark),
# written for pagestream, with the contract of Spark's own kubernetes entrypoint.sh:
#   driver ARGS...    spark-submit in client mode, bound to the pod IP that Spark's
#                     Kubernetes backend passes in SPARK_DRIVER_BIND_ADDRESS
#   executor          the KubernetesExecutorBackend JVM, configured by the SPARK_EXECUTOR_*,
#                     SPARK_DRIVER_URL, SPARK_APPLICATION_ID, ... variables the driver sets
#   anything else     run as given (pass-through)
set -eo pipefail

# An arbitrary uid (OpenShift style) has no passwd entry; the JVM and Hadoop want one.
ensure_passwd_entry() {
  local uid gid lib
  uid="$(id -u)"
  getent passwd "$uid" >/dev/null 2>&1 && return 0
  gid="$(id -g)"
  for lib in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
    [ -s "$lib" ] || continue
    NSS_WRAPPER_PASSWD="$(mktemp)"
    NSS_WRAPPER_GROUP="$(mktemp)"
    echo "spark:x:${uid}:${gid}:${SPARK_USER_NAME:-anonymous uid}:${SPARK_HOME}:/bin/false" >"$NSS_WRAPPER_PASSWD"
    echo "spark:x:${gid}:" >"$NSS_WRAPPER_GROUP"
    export LD_PRELOAD="$lib" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
    return 0
  done
}

# As root (no USER given), drop to spark; otherwise run as the user the pod asked for.
as_spark() {
  if [ "$(id -u)" -eq 0 ]; then
    exec gosu spark /usr/bin/tini -s -- "$@"
  fi
  exec /usr/bin/tini -s -- "$@"
}

if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
fi

# The executor classpath: configuration first, then Spark's jars, the extra and Hadoop
# classpaths, and the working directory (where spark.files land).
classpath="${SPARK_HOME}/jars/*"
[ -n "${SPARK_CLASSPATH:-}" ] && classpath="${SPARK_CLASSPATH}:${classpath}"
[ -n "${SPARK_EXTRA_CLASSPATH:-}" ] && classpath="${classpath}:${SPARK_EXTRA_CLASSPATH}"
if [ -n "${HADOOP_HOME:-}" ] && [ -z "${SPARK_DIST_CLASSPATH:-}" ]; then
  SPARK_DIST_CLASSPATH="$("${HADOOP_HOME}/bin/hadoop" classpath)"
  export SPARK_DIST_CLASSPATH
fi
[ -n "${HADOOP_CONF_DIR:-}" ] && classpath="${HADOOP_CONF_DIR}:${classpath}"
classpath="${SPARK_CONF_DIR:-${SPARK_HOME}/conf}:${classpath}:${PWD}"

# The driver hands executors their JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
java_opts=()
i=0
while var="SPARK_JAVA_OPT_${i}" && [ -n "${!var+set}" ]; do
  java_opts+=("${!var}")
  i=$((i + 1))
done

[ -n "${PYSPARK_PYTHON+set}" ] && export PYSPARK_PYTHON
[ -n "${PYSPARK_DRIVER_PYTHON+set}" ] && export PYSPARK_DRIVER_PYTHON

case "${1:-}" in
  driver)
    shift
    ensure_passwd_entry
    as_spark "${SPARK_HOME}/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client \
      "$@"
    ;;
  executor)
    shift
    ensure_passwd_entry
    as_spark "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "${classpath}:${SPARK_DIST_CLASSPATH:-}" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL}" \
      --executor-id "${SPARK_EXECUTOR_ID}" \
      --cores "${SPARK_EXECUTOR_CORES}" \
      --app-id "${SPARK_APPLICATION_ID}" \
      --hostname "${SPARK_EXECUTOR_POD_IP}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
      --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
  *)
    ensure_passwd_entry
    exec "$@"
    ;;
esac
