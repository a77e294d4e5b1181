package io.shardmap.support.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.ParameterException;

/**
 * The two shapes of error line every Shardmap CLI prints on stderr: {@code error: usage: <message>} and a
 * pointer to the command's help for a command-line mistake, {@code error: <CODE>: <message>} for a
 * failed command. Scripts may match on the {@code error: <CODE>:} prefix.
 */
public final class Errors {
  private Errors() {}

  /** Prints a command-line mistake (with picocli's "did you mean" suggestions) and returns {@link ExitCode#USAGE}. */
  public static int usageError(PrintWriter err, ParameterException ex) {
    err.println("error: usage: " + ex.getMessage());
    CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
    err.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help'.");
    err.flush();
    return ExitCode.USAGE.code();
  }

  /** Prints {@code error: <label>: <message>} and returns {@code code}'s number. */
  public static int failure(PrintWriter err, String label, String message, ExitCode code) {
    err.println("error: " + label + ": " + message);
    err.flush();
    return code.code();
  }
}
