package io.shardmap.migrator.cli;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * How SIGINT and SIGTERM reach a command that stops gracefully ({@code worker}, a foreground drive). The
 * first signal calls the command's handler with its number (2 or 15) instead of ending the process; a
 * second one ends it as usual (the JVM exits; held migrations are taken over once their leases expire).
 */
interface Signals {
  /** Until the returned handle is closed, the first SIGINT or SIGTERM calls {@code onStop} with its number. */
  Handle onStop(IntConsumer onStop);

  interface Handle extends AutoCloseable {
    @Override
    void close();
  }

  /** No signal ever arrives (the default JVM behaviour stays in place). */
  Signals NONE = onStop -> () -> { };

  /**
   * The process's signals, through {@code sun.misc.Signal} (module jdk.unsupported, present in every
   * OpenJDK) looked up reflectively so the build needs no internal API; where it is missing, signals keep
   * their default effect.
   */
  static Signals system() {
    try {
      Class<?> signal = Class.forName("sun.misc.Signal");
      Class<?> handler = Class.forName("sun.misc.SignalHandler");
      Method handle = signal.getMethod("handle", signal, handler);
      Method number = signal.getMethod("getNumber");
      Object[] signals = {signal.getConstructor(String.class).newInstance("INT"),
          signal.getConstructor(String.class).newInstance("TERM")};
      return onStop -> {
        List<Object> previous = new ArrayList<>();
        Runnable restore = () -> {
          synchronized (previous) {
            for (int i = 0; i < previous.size(); i++) {
              try {
                handle.invoke(null, signals[i], previous.get(i));
              } catch (ReflectiveOperationException | RuntimeException e) {
                // leave this signal's handler as it is
              }
            }
            previous.clear();
          }
        };
        InvocationHandler ih = (proxy, method, args) -> {
          if (method.getName().equals("handle") && args != null && args.length == 1) {
            restore.run(); // a second signal has its default effect
            onStop.accept((Integer) number.invoke(args[0]));
            return null;
          }
          return switch (method.getName()) {
            case "hashCode" -> System.identityHashCode(proxy);
            case "equals" -> proxy == args[0];
            case "toString" -> "migrator-signal-handler";
            default -> null;
          };
        };
        Object h = Proxy.newProxyInstance(handler.getClassLoader(), new Class<?>[] {handler}, ih);
        synchronized (previous) {
          for (Object s : signals) {
            try {
              previous.add(handle.invoke(null, s, h));
            } catch (ReflectiveOperationException | RuntimeException e) {
              break; // e.g. SIGINT ignored by a background shell: keep what was installed
            }
          }
        }
        return restore::run;
      };
    } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
      return NONE;
    }
  }
}
