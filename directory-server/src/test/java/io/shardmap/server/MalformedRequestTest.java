package io.shardmap.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.WatchRequest;
import io.shardmap.store.InMemoryMetaStore;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Raw bytes that are not a valid request message, sent over a real channel: INVALID_ARGUMENT naming the
 * message type, counted in shardmap_rpc_results_total, and one log record without a stack trace (before,
 * gRPC answered UNKNOWN "Application error processing RPC", logged a SEVERE stack trace and the counter
 * never saw the call).
 */
@Tag("integration")
class MalformedRequestTest {
  private InMemoryMetaStore store;
  private DirectoryServer server;
  private ManagedChannel channel;
  private final List<LogRecord> records = new ArrayList<>();
  private final Handler capture = new Handler() {
    @Override
    public void publish(LogRecord r) {
      synchronized (records) {
        records.add(r);
      }
    }

    @Override
    public void flush() {}

    @Override
    public void close() {}
  };

  @BeforeEach
  void start() throws Exception {
    store = new InMemoryMetaStore();
    server = DirectoryServer.start(TestSupport.options(List.of("http://127.0.0.1:1"), "/malformed").build(), store);
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    Logger.getLogger("").addHandler(capture);
  }

  @AfterEach
  void stop() {
    Logger.getLogger("").removeHandler(capture);
    channel.shutdownNow();
    server.close();
    store.close();
  }

  private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  };

  private static MethodDescriptor<byte[], byte[]> raw(String fullName, MethodDescriptor.MethodType type) {
    return MethodDescriptor.<byte[], byte[]>newBuilder().setType(type).setFullMethodName(fullName)
        .setRequestMarshaller(BYTES).setResponseMarshaller(BYTES).build();
  }

  private static final MethodDescriptor<byte[], byte[]> LOOKUP =
      raw("shardmap.v1.ShardMapService/Lookup", MethodDescriptor.MethodType.UNARY);
  private static final MethodDescriptor<byte[], byte[]> WATCH =
      raw("shardmap.v1.ShardMapService/Watch", MethodDescriptor.MethodType.SERVER_STREAMING);
  private static final MethodDescriptor<byte[], byte[]> HEALTH =
      raw("grpc.health.v1.Health/Check", MethodDescriptor.MethodType.UNARY);

  /** A valid LookupRequest cut short by one byte: the key's varint is missing. */
  private static byte[] truncatedLookup() {
    byte[] ok = LookupRequest.newBuilder().setKeyspace("users").setKey(Key.newBuilder().setIntKey(1L << 40))
        .build().toByteArray();
    return Arrays.copyOf(ok, ok.length - 1);
  }

  /** Field 1 (keyspaces, a proto3 string) holding 0xC3 0x28, which is not UTF-8. */
  private static final byte[] BAD_UTF8_WATCH = {0x0A, 0x02, (byte) 0xC3, 0x28};

  private StatusRuntimeException unary(MethodDescriptor<byte[], byte[]> m, byte[] body) {
    return assertThrows(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(channel, m,
        CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), body));
  }

  private StatusRuntimeException streaming(MethodDescriptor<byte[], byte[]> m, byte[] body) {
    Iterator<byte[]> it = ClientCalls.blockingServerStreamingCall(channel, m,
        CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), body);
    return assertThrows(StatusRuntimeException.class, it::hasNext);
  }

  private long counted(String method, String status) {
    String prefix = "shardmap_rpc_results_total{method=\"" + method + "\",status=\"" + status + "\"} ";
    return server.scrapeMetrics().lines().filter(l -> l.startsWith(prefix))
        .mapToLong(l -> (long) Double.parseDouble(l.substring(prefix.length()))).sum();
  }

  private List<LogRecord> warnings() {
    synchronized (records) {
      return records.stream().filter(r -> r.getLevel().intValue() >= Level.WARNING.intValue()).toList();
    }
  }

  @Test
  void truncatedUnaryRequestIsInvalidArgumentCountedAndLoggedOnce() {
    StatusRuntimeException e = unary(LOOKUP, truncatedLookup());

    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e::toString);
    assertTrue(e.getStatus().getDescription().startsWith("request: could not be parsed as a "
        + "shardmap.v1.LookupRequest (the request message of shardmap.v1.ShardMapService/Lookup)"), e::toString);
    assertTrue(e.getStatus().getDescription().contains("truncated"), e::toString);
    assertEquals(1, counted("Lookup", "INVALID_ARGUMENT"));
    List<LogRecord> w = warnings();
    assertEquals(1, w.size(), () -> describe(w));
    assertTrue(w.get(0).getMessage().startsWith("refused a malformed shardmap.v1.ShardMapService/Lookup request from"),
        () -> describe(w));
    assertNull(w.get(0).getThrown(), "no stack trace");
  }

  @Test
  void invalidUtf8InAStreamingRequestIsInvalidArgumentCountedAndLoggedOnce() {
    StatusRuntimeException e = streaming(WATCH, BAD_UTF8_WATCH);

    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e::toString);
    assertTrue(e.getStatus().getDescription().contains("shardmap.v1.WatchRequest"), e::toString);
    assertTrue(e.getStatus().getDescription().contains("UTF-8"), e::toString);
    assertEquals(1, counted("Watch", "INVALID_ARGUMENT"));
    List<LogRecord> w = warnings();
    assertEquals(1, w.size(), () -> describe(w));
    assertNull(w.get(0).getThrown(), "no stack trace");
  }

  @Test
  void everyServiceIsGuardedAndValidRequestsStillWork() throws Exception {
    // grpc.health.v1.HealthCheckRequest: field 1 (service, a string) with invalid UTF-8.
    StatusRuntimeException e = unary(HEALTH, new byte[] {0x0A, 0x01, (byte) 0xFF});
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e::toString);
    assertTrue(e.getStatus().getDescription().contains("grpc.health.v1.HealthCheckRequest"), e::toString);

    // The same raw path with valid bytes reaches the application: NOT_FOUND for an unknown keyspace.
    StatusRuntimeException notFound = unary(LOOKUP, LookupRequest.newBuilder().setKeyspace("nope")
        .setKey(Key.newBuilder().setIntKey(1)).build().toByteArray());
    assertEquals(Status.Code.NOT_FOUND, notFound.getStatus().getCode(), notFound::toString);
    assertEquals(1, counted("Lookup", "NOT_FOUND"));
    // A valid watch is accepted and live: its first message comes (a heartbeat) instead of an error.
    Iterator<byte[]> it = ClientCalls.blockingServerStreamingCall(channel, WATCH,
        CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS),
        WatchRequest.newBuilder().setAfterRevision(server.snapshot().revision()).build().toByteArray());
    assertTrue(it.hasNext());
    assertEquals(1, warnings().size(), () -> describe(warnings()));
  }

  private static String describe(List<LogRecord> rs) {
    StringBuilder b = new StringBuilder();
    for (LogRecord r : rs) {
      b.append(r.getLevel()).append(' ').append(r.getLoggerName()).append(": ").append(r.getMessage())
          .append(r.getThrown() == null ? "" : " [" + r.getThrown() + "]").append('\n');
    }
    return b.toString();
  }
}
