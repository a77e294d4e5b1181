package io.shardmap.testkit;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A child process (a server, or a tool run to completion) whose output, stdout and stderr
 * together, is appended to a log file after a line saying when and what was started, so one log
 * holds every run and a failure message can quote it. Standard input is closed at once: nothing
 * here is interactive, and a process waiting for input would only hang until its timeout.
 */
final class ManagedProcess {

  private final Process process;

  private ManagedProcess(Process process) {
    this.process = process;
  }

  /**
   * Starts {@code builder}, whose command and environment the caller has set, with its output
   * appended to {@code log} after the line {@code === shardmap: <now> <header>}.
   */
  static ManagedProcess start(ProcessBuilder builder, Path log, String header) throws IOException {
    builder.redirectErrorStream(true);
    builder.redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    Files.writeString(log, "=== shardmap: " + Instant.now() + " " + header + "\n",
        StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    Process process = builder.start();
    process.getOutputStream().close();
    return new ManagedProcess(process);
  }

  /** The process's handle, for callers that signal or wait for it themselves. */
  ProcessHandle handle() {
    return process.toHandle();
  }

  boolean isAlive() {
    return process.isAlive();
  }

  /**
   * Kills the process with SIGKILL on Unix (no chance to flush or say goodbye to peers) and
   * returns once it has exited.
   *
   * @param what names the process in failure messages, e.g. "etcd member 2"
   * @throws IllegalStateException if it is still alive {@code timeout} later, or on interrupt
   */
  void kill(Duration timeout, String what) {
    process.destroyForcibly();
    try {
      if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        throw new IllegalStateException(what + " (pid " + process.pid() + ") still alive " + timeout + " after SIGKILL");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while killing " + what, e);
    }
  }

  /**
   * Sends {@code SIGSTOP} (freeze: the process keeps its sockets, and the kernel keeps accepting
   * connections and data for it, but nothing answers, as on a hung machine) or {@code SIGCONT}
   * (resume) with {@code kill(1)}, and returns once {@code kill} has exited.
   *
   * @param signal "STOP" or "CONT"
   * @throws IllegalStateException if the process has exited or {@code kill} failed
   */
  void signal(String signal, String what) {
    if (!signal.equals("STOP") && !signal.equals("CONT")) {
      throw new IllegalArgumentException("signal must be STOP or CONT, got " + signal);
    }
    if (!process.isAlive()) {
      throw new IllegalStateException(what + " is not running (" + state() + "); cannot send SIG" + signal);
    }
    try {
      Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid()))
          .redirectErrorStream(true).start();
      kill.getOutputStream().close();
      if (!kill.waitFor(10, TimeUnit.SECONDS)) {
        kill.destroyForcibly();
        throw new IllegalStateException("kill -" + signal + " " + process.pid() + " (" + what + ") did not finish in 10 s");
      }
      String out = new String(kill.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      if (kill.exitValue() != 0) {
        throw new IllegalStateException("kill -" + signal + " " + process.pid() + " (" + what + ") failed with "
            + kill.exitValue() + ": " + out);
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot run kill -" + signal + " for " + what, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while sending SIG" + signal + " to " + what, e);
    }
  }

  /**
   * Waits for the process to finish and returns its exit code.
   *
   * @throws TimeoutException if it did not finish within {@code timeout}; it has then been sent
   *     SIGKILL (not waited for)
   */
  int awaitExit(Duration timeout) throws InterruptedException, TimeoutException {
    if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      process.destroyForcibly();
      throw new TimeoutException("still running after " + timeout);
    }
    return process.exitValue();
  }

  /** "running, pid N" or "exited with N", for failure messages. */
  String state() {
    return process.isAlive() ? "running, pid " + process.pid() : "exited with " + process.exitValue();
  }
}
