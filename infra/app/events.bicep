// The system topic of this resource group and its subscription to the app's deallocation webhook.
// Only successful deallocations reach the app (shared/events.py reads the same event type and operation).
param tags object = {}

@description('Resource group of the Function App.')
param appResourceGroup string

@description('Name of the Function App.')
param functionAppName string

@description('The HTTP-triggered function Event Grid calls (its function key authenticates the delivery).')
param functionName string

@description('That function\'s route, under /api.')
param route string

var resourceActionSuccess = 'Microsoft.Resources.ResourceActionSuccess'
var deallocateOperation = 'Microsoft.Compute/virtualMachines/deallocate/action'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
  scope: resourceGroup(appResourceGroup)
}

resource webhook 'Microsoft.Web/sites/functions@2024-04-01' existing = {
  parent: site
  name: functionName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${uniqueString(resourceGroup().id)}-vm'
  location: 'global'
  tags: tags
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
  }
}

resource deallocations 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'capture-on-deallocation'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/api/${route}?code=${webhook.listKeys().default}'
        maxEventsPerBatch: 10
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [resourceActionSuccess]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [deallocateOperation]
        }
      ]
    }
    // The app refuses events older than this time-to-live (shared/events.py), so redelivery stops with it.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output topicName string = topic.name
