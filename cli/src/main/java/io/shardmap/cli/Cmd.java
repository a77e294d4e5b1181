package io.shardmap.cli;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.shardmap.proto.v1.EtcdQuorum;
import io.shardmap.proto.v1.Freshness;
import io.shardmap.support.cli.ExitCode;
import io.shardmap.support.cli.Table;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * A leaf command: it runs against the root's channel and prints through the root's writers. A command
 * either completes and returns 0, or throws; the root turns the exception into a message and exit code.
 */
abstract class Cmd implements Callable<Integer> {
  private static final JsonFormat.Printer PRETTY = JsonFormat.printer().alwaysPrintFieldsWithNoPresence();
  private static final JsonFormat.Printer COMPACT = PRETTY.omittingInsignificantWhitespace();

  @Spec CommandSpec spec;

  @Override
  public final Integer call() {
    execute(ctl());
    ctl().out.flush();
    ctl().err.flush();
    return ExitCode.OK.code();
  }

  abstract void execute(ShardmapCtl ctl);

  ShardmapCtl ctl() {
    return (ShardmapCtl) spec.root().userObject();
  }

  /** A usage error of this command (exit 2, with a pointer to its help). */
  ParameterException usage(String message) {
    return new ParameterException(spec.commandLine(), message);
  }

  /** In JSON mode prints the response and returns true; in text mode returns false. */
  boolean printedJson(MessageOrBuilder response) {
    if (!ctl().json()) {
      return false;
    }
    ctl().out.println(json(response, false));
    return true;
  }

  static String json(MessageOrBuilder m, boolean compact) {
    try {
      return (compact ? COMPACT : PRETTY).print(m);
    } catch (InvalidProtocolBufferException e) {
      // Only Any fields with unknown types fail to print; shardmap.v1 has none.
      throw new IllegalStateException("cannot print " + m.getClass().getSimpleName() + " as JSON", e);
    }
  }

  void line(String s) {
    ctl().out.println(s);
  }

  void table(List<String> header, List<List<String>> rows) {
    Table.print(ctl().out, header, rows);
  }

  /** Reports the share of the key space whose owner a change moved. */
  void moved(double fraction) {
    line("moved " + Text.percent(fraction) + " of the key space to a new owner");
  }

  /** Prints {@code name  value} lines, values aligned. */
  void keyValues(Map<String, String> values) {
    Table.keyValues(ctl().out, values);
  }

  /** Warns on stderr when the answer came from a server that cannot currently confirm it is up to date. */
  void warnIfStale(Freshness f) {
    if (f.getRevision() <= 0) {
      return;
    }
    if (f.getEtcdQuorum() == EtcdQuorum.ETCD_QUORUM_UNREACHABLE) {
      ctl().err.println("warning: the server cannot reach etcd; this answer is from its snapshot at revision "
          + f.getRevision() + ", last confirmed current " + f.getAgeMillis() + " ms ago");
    } else if (f.getEtcdQuorum() != EtcdQuorum.ETCD_QUORUM_REACHABLE) {
      ctl().err.println("warning: the server does not say whether it reaches etcd (a server from before "
          + "freshness.etcd_quorum); this answer is from its snapshot at revision " + f.getRevision());
    }
  }
}
