package io.shardmap.bench;

import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.BatchLookupRequest;
import io.shardmap.proto.v1.BatchLookupResponse;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.LookupResponse;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/**
 * The baseline server: bare grpc-java with a hand-written service definition, no interceptors, no
 * state. Each method parses the request (the same message type the directory server parses) and answers
 * with a pre-built reply captured from the directory server, so request and reply bytes on the wire are
 * the directory's own. What remains between this and the directory server is exactly the directory's
 * per-call work: snapshot read, routing, building the reply, metrics and the RPC-counting interceptor.
 *
 * <p>Transport settings copy DirectoryServer's: netty-shaded, direct executor, same keep-alive policy and
 * inbound size limit, default event loops.
 */
public final class EchoServer implements AutoCloseable {
  public static final String SERVICE = "shardmap.bench.v1.Echo";

  public static final MethodDescriptor<LookupRequest, LookupResponse> LOOKUP =
      MethodDescriptor.<LookupRequest, LookupResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Lookup"))
          .setRequestMarshaller(ProtoUtils.marshaller(LookupRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(LookupResponse.getDefaultInstance()))
          .build();

  public static final MethodDescriptor<BatchLookupRequest, BatchLookupResponse> BATCH_LOOKUP =
      MethodDescriptor.<BatchLookupRequest, BatchLookupResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "BatchLookup"))
          .setRequestMarshaller(ProtoUtils.marshaller(BatchLookupRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(BatchLookupResponse.getDefaultInstance()))
          .build();

  private final Server server;

  /** Starts on loopback, on a free port. */
  public EchoServer(LookupResponse lookupReply, BatchLookupResponse batchReply) throws IOException {
    ServerServiceDefinition service = ServerServiceDefinition.builder(SERVICE)
        .addMethod(LOOKUP, ServerCalls.asyncUnaryCall((LookupRequest req, StreamObserver<LookupResponse> out) -> {
          out.onNext(lookupReply);
          out.onCompleted();
        }))
        .addMethod(BATCH_LOOKUP, ServerCalls.asyncUnaryCall(
            (BatchLookupRequest req, StreamObserver<BatchLookupResponse> out) -> {
              out.onNext(batchReply);
              out.onCompleted();
            }))
        .build();
    this.server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .directExecutor()
        .permitKeepAliveTime(5, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .maxInboundMessageSize(32 << 20)
        .addService(service)
        .build()
        .start();
  }

  public int port() {
    return server.getPort();
  }

  @Override
  public void close() {
    server.shutdown();
    try {
      if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
        server.shutdownNow();
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
