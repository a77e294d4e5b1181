package io.shardmap.testkit;

/**
 * Where a fixture's servers come from: an external set named by an environment variable, child
 * processes of local binaries, or containers. Server {@code i} is the fixture's i-th etcd member
 * or PostgreSQL shard; the fixture checks indexes before calling in. Each fixture extends this
 * with what only it needs (endpoints, shards).
 */
interface ServerBackend {

  /** Which kind of backend, and where its files are, for failure messages. */
  String description();

  /** How many servers there are, stopped ones included. */
  int size();

  /** Whether {@link #stop} and {@link #start} work; false for external servers. */
  boolean canControl();

  /** Stops server i the way a crash would and waits until it is down; no-op if stopped. */
  void stop(int i);

  /** Starts server i again with its old data and ports; does not wait for it to serve. */
  void start(int i);

  /** Whether server i is up; always true for external servers (they cannot be observed). */
  boolean isRunning(int i);

  String logLocation(int i);

  /** Log location and recent output of server i, for failure messages. */
  String diagnostics(int i);

  /** Whether {@link #close} with {@code keepLogs} leaves log files behind worth pointing to. */
  boolean keepsLogs();

  /** Stops every server this backend started and deletes its data; logs survive if {@code keepLogs}. */
  void close(boolean keepLogs);
}
