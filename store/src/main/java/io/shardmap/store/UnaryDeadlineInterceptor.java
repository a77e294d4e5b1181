package io.shardmap.store;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.MethodDescriptor;
import java.util.concurrent.TimeUnit;

/**
 * Gives every unary etcd RPC (range, txn, lease grant/revoke, compact) a gRPC deadline, so a request
 * that timed out on our side is also cancelled on the wire and on the server instead of lingering in
 * jetcd's wait-for-ready queue. Streams (watch, lease keep-alive) are long-lived and get none.
 */
final class UnaryDeadlineInterceptor implements ClientInterceptor {

  private final long timeoutNanos;

  UnaryDeadlineInterceptor(long timeoutNanos) {
    this.timeoutNanos = timeoutNanos;
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(MethodDescriptor<ReqT, RespT> method,
      CallOptions callOptions, Channel next) {
    CallOptions options = callOptions;
    if (method.getType() == MethodDescriptor.MethodType.UNARY && callOptions.getDeadline() == null) {
      options = callOptions.withDeadlineAfter(timeoutNanos, TimeUnit.NANOSECONDS);
    }
    return next.newCall(method, options);
  }
}
