package io.shardmap.server.internal;

import io.grpc.stub.StreamObserver;
import io.shardmap.proto.v1.FleetServiceGrpc;
import io.shardmap.proto.v1.GetSizesRequest;
import io.shardmap.proto.v1.GetSizesResponse;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.RefreshSizesResponse;

/**
 * shardmap.v1.FleetService: where the data and the load are (docs/sizes.md). Each method delegates to the
 * class that holds its logic.
 */
public final class FleetService extends FleetServiceGrpc.FleetServiceImplBase {
  private final SizesRpc sizes;

  public FleetService(SizesRpc sizes) {
    this.sizes = sizes;
  }

  @Override
  public void getSizes(GetSizesRequest r, StreamObserver<GetSizesResponse> o) {
    sizes.getSizes(r, o);
  }

  @Override
  public void refreshSizes(RefreshSizesRequest r, StreamObserver<RefreshSizesResponse> o) {
    sizes.refreshSizes(r, o);
  }
}
