package io.shardmap.server.internal;

import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetFleetStatusRequest;
import io.shardmap.proto.v1.GetHeatmapRequest;
import io.shardmap.proto.v1.ListKeyspacesRequest;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BiConsumer;

/**
 * The fleet page (docs/load.md, "The page"): a heatmap of load over unit space and time, shard sizes and
 * load, the hottest units with their suggested actions, and the moves in progress. Served by every directory
 * server on its HTTP port next to /metrics, as one static HTML file (no build chain) that reads three JSON
 * endpoints, which are the gRPC answers in proto3 JSON:
 *
 * <ul>
 *   <li>{@code /api/v1/keyspaces}: ShardMapService.ListKeyspaces;
 *   <li>{@code /api/v1/heatmap?keyspace=K&window=S&rows=N}: FleetService.GetHeatmap;
 *   <li>{@code /api/v1/status?keyspace=K&window=S&top=N}: FleetService.GetFleetStatus.
 * </ul>
 *
 * The endpoints call the server's own service objects in process, so they answer exactly what a gRPC client
 * gets, errors included: a gRPC status becomes an HTTP status (INVALID_ARGUMENT 400, NOT_FOUND 404,
 * UNIMPLEMENTED 501, UNAVAILABLE 503, others 500) with {@code {"code": ..., "message": ...}}. Only GET.
 */
public final class FleetPage {
  private static final JsonFormat.Printer JSON = JsonFormat.printer().omittingInsignificantWhitespace();
  private static final String PAGE_RESOURCE = "/io/shardmap/server/fleet.html";
  /** The longest an endpoint waits for its service's answer. */
  static final long CALL_TIMEOUT_MS = 10_000;

  private final FleetServiceGrpc.FleetServiceImplBase fleet;
  private final ShardMapServiceGrpc.ShardMapServiceImplBase read;
  private final byte[] page;

  public FleetPage(FleetServiceGrpc.FleetServiceImplBase fleet, ShardMapServiceGrpc.ShardMapServiceImplBase read) {
    this.fleet = fleet;
    this.read = read;
    try (InputStream in = FleetPage.class.getResourceAsStream(PAGE_RESOURCE)) {
      if (in == null) {
        throw new IllegalStateException("the fleet page " + PAGE_RESOURCE + " is missing from the jar");
      }
      this.page = in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Adds the page ({@code /} and {@code /fleet}) and its JSON endpoints to {@code http}. */
  public void mount(HttpServer http) {
    http.createContext("/fleet", ex -> serve(ex, () -> page, "text/html; charset=utf-8"));
    http.createContext("/api/v1/keyspaces", ex -> json(ex, q -> unary(read::listKeyspaces,
        ListKeyspacesRequest.getDefaultInstance())));
    http.createContext("/api/v1/heatmap", ex -> json(ex, q -> unary(fleet::getHeatmap,
        GetHeatmapRequest.newBuilder().setKeyspace(q.getOrDefault("keyspace", ""))
            .setWindowSeconds(number(q, "window")).setMaxRows((int) number(q, "rows")).build())));
    http.createContext("/api/v1/status", ex -> json(ex, q -> unary(fleet::getFleetStatus,
        GetFleetStatusRequest.newBuilder().setKeyspace(q.getOrDefault("keyspace", ""))
            .setWindowSeconds(number(q, "window")).setTop((int) number(q, "top")).build())));
    // The root redirects to the page, so the address up.sh prints needs no path.
    http.createContext("/", ex -> {
      if (!"/".equals(ex.getRequestURI().getPath())) {
        send(ex, 404, "text/plain; charset=utf-8", "not found\n".getBytes(StandardCharsets.UTF_8));
        return;
      }
      ex.getResponseHeaders().set("Location", "/fleet");
      ex.sendResponseHeaders(302, -1);
      ex.close();
    });
  }

  private interface Body {
    byte[] get();
  }

  private interface Call {
    Message call(Map<String, String> query);
  }

  private static void serve(HttpExchange ex, Body body, String type) throws IOException {
    if (!"GET".equals(ex.getRequestMethod()) && !"HEAD".equals(ex.getRequestMethod())) {
      send(ex, 405, "text/plain; charset=utf-8", "only GET\n".getBytes(StandardCharsets.UTF_8));
      return;
    }
    send(ex, 200, type, body.get());
  }

  private static void json(HttpExchange ex, Call call) throws IOException {
    if (!"GET".equals(ex.getRequestMethod())) {
      send(ex, 405, "application/json", error("INVALID_ARGUMENT", "only GET"));
      return;
    }
    try {
      Message m = call.call(query(ex.getRequestURI()));
      send(ex, 200, "application/json", JSON.print(m).getBytes(StandardCharsets.UTF_8));
    } catch (StatusRuntimeException e) {
      Status s = e.getStatus();
      send(ex, httpStatus(s.getCode()), "application/json",
          error(s.getCode().name(), s.getDescription() == null ? "" : s.getDescription()));
    } catch (IllegalArgumentException e) {
      send(ex, 400, "application/json", error("INVALID_ARGUMENT", e.getMessage()));
    } catch (RuntimeException e) {
      send(ex, 500, "application/json", error("INTERNAL", String.valueOf(e)));
    }
  }

  static int httpStatus(Status.Code code) {
    switch (code) {
      case INVALID_ARGUMENT:
      case OUT_OF_RANGE:
        return 400;
      case NOT_FOUND:
        return 404;
      case FAILED_PRECONDITION:
        return 409;
      case UNIMPLEMENTED:
        return 501;
      case UNAVAILABLE:
      case DEADLINE_EXCEEDED:
        return 503;
      default:
        return 500;
    }
  }

  private static byte[] error(String code, String message) {
    com.google.gson.JsonObject o = new com.google.gson.JsonObject();
    o.addProperty("code", code);
    o.addProperty("message", message);
    return o.toString().getBytes(StandardCharsets.UTF_8);
  }

  private static void send(HttpExchange ex, int status, String type, byte[] body) throws IOException {
    ex.getResponseHeaders().set("Content-Type", type);
    ex.getResponseHeaders().set("Cache-Control", "no-store");
    boolean head = "HEAD".equals(ex.getRequestMethod());
    ex.sendResponseHeaders(status, head ? -1 : body.length);
    try (OutputStream os = ex.getResponseBody()) {
      if (!head) {
        os.write(body);
      }
    }
  }

  /** A query string's parameters (the last of repeated names wins). */
  static Map<String, String> query(URI uri) {
    Map<String, String> out = new HashMap<>();
    String raw = uri.getRawQuery();
    if (raw == null || raw.isEmpty()) {
      return out;
    }
    for (String part : raw.split("&")) {
      int eq = part.indexOf('=');
      String k = URLDecoder.decode(eq < 0 ? part : part.substring(0, eq), StandardCharsets.UTF_8);
      String v = eq < 0 ? "" : URLDecoder.decode(part.substring(eq + 1), StandardCharsets.UTF_8);
      out.put(k, v);
    }
    return out;
  }

  /** A whole number parameter; absent or empty is 0 (the RPC's default). */
  static long number(Map<String, String> q, String name) {
    String v = q.get(name);
    if (v == null || v.isEmpty()) {
      return 0;
    }
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + ": must be a whole number, got '" + v + "'");
    }
  }

  /**
   * Calls a unary service method in process and returns its answer, or throws its error; waits at most
   * {@link #CALL_TIMEOUT_MS} for a method that answers on another thread.
   */
  static <Q, R> R unary(BiConsumer<Q, StreamObserver<R>> method, Q request) {
    CompletableFuture<R> done = new CompletableFuture<>();
    method.accept(request, new StreamObserver<R>() {
      @Override
      public void onNext(R value) {
        done.complete(value);
      }

      @Override
      public void onError(Throwable t) {
        done.completeExceptionally(t);
      }

      @Override
      public void onCompleted() {
        done.completeExceptionally(Status.INTERNAL.withDescription("the service answered nothing")
            .asRuntimeException());
      }
    });
    try {
      return done.get(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      Throwable t = e.getCause();
      throw t instanceof StatusRuntimeException ? (StatusRuntimeException) t : Status.fromThrowable(t).asRuntimeException();
    } catch (TimeoutException e) {
      throw Status.DEADLINE_EXCEEDED.withDescription("no answer within " + CALL_TIMEOUT_MS + " ms")
          .asRuntimeException();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
    }
  }
}
