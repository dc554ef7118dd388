// A Lambda handler written for an API Gateway WebSocket API, unchanged for
// chatd. Every socket event reaches it as API Gateway's proxy event; the
// answer to a client that asks for its connection id goes back through the
// management API's PostToConnection, which chatd serves at
// https://{domainName}/{stage}/@connections/{connectionId}.
//
// Region and credentials come from the environment, as in a Lambda runtime
// (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

import { ApiGatewayManagementApiClient, PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi";

export const handler = async (event) => {
  const { routeKey, connectionId, domainName, stage } = event.requestContext;

  if (routeKey === "$connect" || routeKey === "$disconnect") {
    console.log(`${routeKey} ${connectionId}`);
    return { statusCode: 200 };
  }

  // $default: the frame's body, here a JSON object naming an action.
  let action;
  try {
    action = JSON.parse(event.body || "{}").action;
  } catch {
    return { statusCode: 400, body: "the body must be JSON" };
  }
  if (action === "GET_CONNECTION_ID") {
    const management = new ApiGatewayManagementApiClient({ endpoint: `https://${domainName}/${stage}` });
    await management.send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: JSON.stringify({ connectionId }) }),
    );
  }
  return { statusCode: 200 };
};
