package io.shardmap.migrator.cli;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.MigratorOptions;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * A command: it runs against the root's Migrator and prints through the root's writers. It returns its
 * exit code, or throws; the root turns the exception into a message and an exit code.
 */
abstract class Cmd implements Callable<Integer> {
  private static final JsonFormat.Printer PRETTY = JsonFormat.printer().alwaysPrintFieldsWithNoPresence();
  private static final JsonFormat.Printer COMPACT = PRETTY.omittingInsignificantWhitespace();

  @Spec CommandSpec spec;

  @Override
  public final Integer call() throws Exception {
    try {
      return execute(cli());
    } finally {
      cli().out.flush();
      cli().err.flush();
    }
  }

  abstract int execute(MigratorCli cli) throws Exception;

  MigratorCli cli() {
    return (MigratorCli) spec.root().userObject();
  }

  Migrator migrator() {
    return cli().migrator(spec.commandLine());
  }

  MigratorOptions options() {
    return cli().options(spec.commandLine());
  }

  /** A usage error of this command (exit 2, with a pointer to its help). */
  ParameterException usage(String message) {
    return new ParameterException(spec.commandLine(), message);
  }

  /** A builder setter whose IllegalArgumentException becomes a usage error naming {@code option}. */
  void set(String option, Runnable setter) {
    MigratorCli.set(spec.commandLine(), option, setter);
  }

  static String json(MessageOrBuilder m, boolean compact) {
    try {
      return (compact ? COMPACT : PRETTY).print(m);
    } catch (InvalidProtocolBufferException e) {
      // Only Any fields with unknown types fail to print; Migration has none.
      throw new IllegalStateException("cannot print " + m.getClass().getSimpleName() + " as JSON", e);
    }
  }
}
