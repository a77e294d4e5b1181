package io.shardmap.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.HashMap;
import java.util.Map;

/** Runs shardmapctl in-process against a real directory server, as a PostgreSQL role, for the tests that read the shards. */
final class CtlRun {
  private CtlRun() {}

  /** A finished run: its exit code and what it printed. */
  record Result(int code, String out, String err) {}

  /** {@code shardmapctl ARGS} with $SHARDMAP_SERVER, $PGUSER and (when not null) $SHARDMAP_PG_PASSWORD set. */
  static Result as(String server, String pgUser, String pgPassword, String... args) {
    Map<String, String> env = new HashMap<>();
    env.put("SHARDMAP_SERVER", server);
    env.put("PGUSER", pgUser);
    if (pgPassword != null) {
      env.put("SHARDMAP_PG_PASSWORD", pgPassword);
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = ShardmapCtl.run(args, env, ShardmapCtl::plaintextChannel, new PrintWriter(out), new PrintWriter(err));
    return new Result(code, out.toString(), err.toString());
  }
}
